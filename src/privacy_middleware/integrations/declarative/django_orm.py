"""The Django ORM adapter: the shop's own models, named in the policy (`[[adapter.models]]`).

For Django, DRF and Oscar shops wrapped in-process. Django is set up on first use when the shop's
ASGI application has not done it, and every ORM call runs through asgiref's `sync_to_async`
(thread-sensitive), as Django's own async views do. Each model names the field lookup that holds the
subject id (`user_id`, `user__email`...) and what erasure does to each field; a record is deleted
unless a field is kept or one of its categories is on legal hold, in which case its personal fields
are erased or anonymised and it is kept. Deletion follows the model's own `on_delete` rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from ...errors import ConfigError
from ...identity.django_session import setup_django
from ...policy.schema import DjangoModel, Policy
from ...rights.adapter import ErasureOutcome, RetentionItem, ShopAdapterError, ShopRecord
from .common import ANONYMISED, ANONYMISED_ROOM, fate, item, jsonable


def _model(declared: DjangoModel) -> Any:
    from django.apps import apps

    try:
        return apps.get_model(declared.model)
    except (LookupError, ValueError):
        raise ShopAdapterError(f"no Django model {declared.model}") from None


def _emptied(model: Any, name: str, action: str, key: str) -> Any:
    field = model._meta.get_field(name)
    is_text = field.get_internal_type() in {"CharField", "TextField", "EmailField", "SlugField", "URLField"}
    if action == "anonymise" and is_text:
        limit = getattr(field, "max_length", None)
        if limit is None or limit >= ANONYMISED_ROOM:
            from django.db.models import CharField, Value
            from django.db.models.functions import Cast, Concat

            return Concat(Value(ANONYMISED), Cast(key, output_field=CharField()), output_field=CharField())
    if field.null:
        return None
    if is_text:
        return ""
    raise ShopAdapterError(f"{model._meta.label}.{name} cannot be emptied (not nullable)")


class DjangoAdapter:
    name = "django"

    def __init__(self, policy: Policy, settings_module: str | None = None) -> None:
        self.policy = policy
        self.declared = list(policy.adapter.models)
        self.settings_module = settings_module

    async def _run(self, work: Any, *args: Any) -> Any:
        from asgiref.sync import sync_to_async

        setup_django(self.settings_module)
        try:
            return await sync_to_async(work, thread_sensitive=True)(*args)
        except ShopAdapterError:
            raise
        except Exception as exc:  # the database or the ORM failed: worth retrying
            raise ShopAdapterError(f"the shop's models failed ({type(exc).__name__})", retryable=True) from None

    def _queryset(self, declared: DjangoModel, subject: str) -> Any:
        return _model(declared)._default_manager.filter(**{declared.subject: subject})

    async def records(self, subject: str) -> list[ShopRecord]:
        def work() -> list[ShopRecord]:
            found = []
            for declared in self.declared:
                for row in self._queryset(declared, subject).values():
                    created = row.get(declared.created) if declared.created else None
                    found.append(
                        ShopRecord(
                            kind=declared.kind or declared.model,
                            id=str(row[declared.key]),
                            data={k: jsonable(v) for k, v in row.items()},
                            shape=declared.shape,
                            created_at=created if isinstance(created, dt.datetime) else None,
                        )
                    )
            return found

        result: list[ShopRecord] = await self._run(work)
        return result

    def _changes(self, declared: DjangoModel) -> dict[str, Any]:
        model = _model(declared)
        return {
            name: _emptied(model, name, action, declared.key)
            for name, action in declared.fields.items()
            if action != "keep"
        }

    async def erase(self, subject: str, *, keep_for_legal_hold: dict[str, str]) -> ErasureOutcome:
        def work() -> ErasureOutcome:
            from django.db import transaction

            outcome = ErasureOutcome()
            with transaction.atomic():
                for declared in self.declared:
                    queryset = self._queryset(declared, subject)
                    keys = [str(k) for k in queryset.values_list(declared.key, flat=True)]
                    if not keys:
                        continue
                    kind = declared.kind or declared.model
                    decided = fate(declared, keep_for_legal_hold)
                    if decided.delete:
                        queryset.delete()
                        outcome.deleted.extend(item(kind, k) for k in keys)
                        continue
                    changes = self._changes(declared)
                    if changes:
                        queryset.update(**changes)
                    outcome.anonymised.extend(item(kind, k) for k in keys)
                    outcome.kept.extend((item(kind, k), decided.reason) for k in keys)
            return outcome

        result: ErasureOutcome = await self._run(work)
        return result

    async def rectify(self, subject: str, changes: dict[str, Any]) -> list[str]:
        raise ShopAdapterError("the Django adapter does not apply corrections; make them in the shop")

    async def expired(self, category: str, cutoff: dt.datetime) -> list[RetentionItem]:
        def work() -> list[RetentionItem]:
            items = []
            for declared in self.declared:
                if category not in declared.categories or not declared.created:
                    continue
                rows = (
                    _model(declared)
                    ._default_manager.filter(**{f"{declared.created}__lt": cutoff})
                    .values_list(declared.key, declared.created, declared.subject)
                )
                for key, created, subject in rows:
                    items.append(
                        RetentionItem(
                            kind=declared.kind or declared.model,
                            id=str(key),
                            category=category,
                            created_at=created,
                            subject=None if subject is None else str(subject),
                        )
                    )
            return items

        result: list[RetentionItem] = await self._run(work)
        return result

    async def apply_retention(self, items: list[RetentionItem], action: Literal["delete", "anonymise"]) -> int:
        def work() -> int:
            changed = 0
            for declared in self.declared:
                keys = [i.id for i in items if i.kind == (declared.kind or declared.model)]
                if not keys:
                    continue
                queryset = _model(declared)._default_manager.filter(**{f"{declared.key}__in": keys})
                if action == "delete":
                    changed += queryset.delete()[0]
                elif changes := self._changes(declared):
                    changed += queryset.update(**changes)
            return changed

        result: int = await self._run(work)
        return result


def from_runtime(runtime: Any) -> DjangoAdapter:
    """PRIVACY_SHOP_ADAPTER=django: the models of `[[adapter.models]]`."""
    if not runtime.policy.adapter.models:
        raise ConfigError("the django shop adapter needs [[adapter.models]] in the policy")
    return DjangoAdapter(runtime.policy, runtime.settings.identity.django_settings_module)
