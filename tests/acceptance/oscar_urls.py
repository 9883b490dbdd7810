from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path


def whoami(request: HttpRequest) -> HttpResponse:
    """The who-am-I view docs/django.md asks a shop behind the reverse proxy to add."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "not signed in"}, status=401)
    return JsonResponse({"id": request.user.pk})


urlpatterns = [path("api/me/", whoami), path("api/", include("oscarapi.urls"))]
