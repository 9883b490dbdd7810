"""Record binding: the record the shop creates from a write is bound to the subject it was sealed for.

A guest's order names no account, so a partner or staff reading it later could not know whose key
opens its fields. When a route's request fields were sealed for exactly one subject and the shop
answers with records of a shape that declares a `record_key` (an order number), each record's key
is bound to that subject (first binding wins). The disclosure then reveals those records to any
recipient the policy grants, exactly as for records that name their subject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields.engine import record_key_of, records_of
from ..policy.compile import CompiledBody, RouteSpec
from ..store.record_owners import RecordOwners
from .plan import Exchange, Step, StepFactory

if TYPE_CHECKING:
    from ..services import Services


class BindRecords(Step):
    peeks_response_json = True

    def __init__(self, body: CompiledBody, owners: RecordOwners) -> None:
        self.body = body
        self.owners = owners

    async def on_response(self, ex: Exchange) -> None:
        sealed = ex.ctx.facts.sealed_for
        if len(sealed) != 1 or not 200 <= ex.status < 300 or not ex.response_has_json:
            return
        keys = [key for record in records_of(self.body, ex.response_json) if (key := record_key_of(self.body, record))]
        if keys:
            await self.owners.bind(self.body.kind, keys, next(iter(sealed)))


def factory(services: Services) -> StepFactory:
    owners = services.record_owners

    def bind(spec: RouteSpec) -> Step | None:
        if owners is None or spec.request is None or spec.response is None or spec.response.record_key is None:
            return None
        return BindRecords(spec.response, owners)

    return bind
