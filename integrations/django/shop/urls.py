"""The shop's API: GET /api/orders/<id> returns the whole order, personal data included."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

ORDER = {
    "id": "ord_1",
    "customer_id": "cus_1",
    "total": 17.0,
    "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "shipping_address": {"street": "1 Tea Lane", "city": "Leeds", "country": "GB"},
}


def order(request: HttpRequest, order_id: str) -> JsonResponse:
    return JsonResponse({**ORDER, "id": order_id})


urlpatterns = [path("api/orders/<str:order_id>", order)]
