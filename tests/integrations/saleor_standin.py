"""Stands in for `saleor.asgi:application` in the Saleor example's smoke test (SALEOR_ASGI_APP):
answers the GraphQL endpoint with a customer, as Saleor would to a staff token."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

USER = {
    "id": "VXNlcjox",
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
}


async def graphql(request: Request) -> JSONResponse:
    return JSONResponse({"data": {"user": USER}})


async def standin_health(request: Request) -> JSONResponse:
    return JSONResponse({"saleor": "stand-in"})


application = Starlette(
    routes=[Route("/graphql/", graphql, methods=["POST"]), Route("/standin", standin_health, methods=["GET"])]
)
