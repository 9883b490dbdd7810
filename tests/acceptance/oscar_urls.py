"""The acceptance shop's URLs: django-oscar-api, plus the few views Oscar leaves to the shop.

- `api/me/`: the who-am-I view docs/django.md asks a shop behind the reverse proxy to add.
- `api/orders/<pk>/payment/`: the `api-payment` view django-oscar-api asks every shop to implement
  (it records the card the customer pays with as the order's payment source).
- `api/checkout/`: Oscar-API's checkout; a guest's placed order answers as Oscar's web checkout does,
  with a redirect to the order's status page, whose URL carries Oscar's verification hash.
- `api/order-status/<number>/<hash>/`: that status page as JSON (Oscar's `customer:anon-order`).
"""

from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import include, path, reverse
from drf_spectacular.utils import extend_schema
from oscar.core.loading import get_model
from oscarapi.serializers.checkout import OrderSerializer
from oscarapi.views.checkout import CheckoutView
from rest_framework import generics, permissions, serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

Order = get_model("order", "Order")
Source = get_model("payment", "Source")
SourceType = get_model("payment", "SourceType")


def whoami(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "not signed in"}, status=401)
    return JsonResponse({"id": request.user.pk})


class CardSerializer(serializers.Serializer):
    number = serializers.CharField()
    holder = serializers.CharField(required=False, allow_blank=True)
    cvv = serializers.CharField(required=False)


class PaymentRequestSerializer(serializers.Serializer):
    card = CardSerializer()


class SourceSerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(source="amount_allocated", max_digits=12, decimal_places=2)

    class Meta:
        model = Source
        fields = ("id", "reference", "label", "amount")


class PaymentSerializer(serializers.Serializer):
    order = serializers.CharField(source="number")
    sources = SourceSerializer(many=True)


class PaymentView(generics.GenericAPIView):
    """The card an order is paid with, recorded as the order's payment source."""

    permission_classes = [permissions.IsAuthenticated]
    queryset = Order.objects.all()
    serializer_class = PaymentSerializer

    def get_object(self) -> Any:
        order = super().get_object()
        if order.user_id != self.request.user.pk and not self.request.user.is_staff:
            raise NotFound()
        return order

    def get(self, request: Request, pk: int) -> Response:
        return Response(PaymentSerializer(self.get_object()).data)

    @extend_schema(request=PaymentRequestSerializer, responses={201: PaymentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = self.get_object()
        sent = PaymentRequestSerializer(data=request.data)
        if order.user_id != request.user.pk or not sent.is_valid():
            return Response({"detail": "Send the card you pay with."}, status=400)
        card = sent.validated_data["card"]
        Source.objects.create(
            order=order,
            source_type=SourceType.objects.get_or_create(name="Card")[0],
            currency=order.currency,
            amount_allocated=Decimal(order.total_incl_tax),
            reference=card["number"],
            label=card.get("holder", ""),
        )
        return Response(PaymentSerializer(order).data, status=201)


class ShopCheckout(CheckoutView):
    def post(self, request: Request, format: Any = None, *args: Any, **kwargs: Any) -> Any:
        response = super().post(request, format, *args, **kwargs)
        if response.status_code != 200 or request.user.is_authenticated:
            return response
        order = Order.objects.get(number=response.data["number"])
        status = reverse("order-status", kwargs={"number": order.number, "hash": order.verification_hash()})
        return HttpResponseRedirect(status, status=303)


@extend_schema(responses=OrderSerializer)
@api_view(["GET"])
@permission_classes([permissions.AllowAny])
def order_status(request: Request, number: str, hash: str) -> Response:
    order = Order.objects.filter(user=None, number=number).first()
    if order is None or not order.check_verification_hash(hash):
        return Response({"detail": "Not found."}, status=404)
    return Response(OrderSerializer(order, context={"request": request}).data)


urlpatterns = [
    path("api/me/", whoami),
    path("api/orders/<int:pk>/payment/", PaymentView.as_view(), name="api-payment"),
    path("api/checkout/", ShopCheckout.as_view(), name="api-checkout"),
    path("api/order-status/<str:number>/<str:hash>/", order_status, name="order-status"),
    path("api/", include("oscarapi.urls")),
]
