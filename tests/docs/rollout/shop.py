"""The shop the commands of docs/rollout.md run against (tests/docs/test_rollout_commands.py): a small
FastAPI shop whose OpenAPI document, routes and recorded bodies feed `policy draft`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Address(BaseModel):
    name: str
    street: str
    city: str
    postal_code: str
    phone: str


class Card(BaseModel):
    number: str
    cvv: str


class Checkout(BaseModel):
    email: str
    shipping_address: Address
    card: Card
    note: str


class Order(BaseModel):
    id: str
    customer_id: str
    email: str
    shipping_address: Address
    total: float


app = FastAPI(title="Rollout tea shop")


@app.post("/checkout", response_model=Order)
def checkout(body: Checkout) -> Any: ...


@app.get("/orders", response_model=list[Order])
def orders() -> Any: ...


@app.post("/auth/login")
def login(body: dict[str, str]) -> Any: ...
