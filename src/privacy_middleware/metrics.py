"""Prometheus metrics on a registry owned by one middleware instance (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """The counters every capability extends; each capability adds its own on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "privacy_requests",
            "Requests on routes with a privacy plan, by route template and outcome.",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "privacy_refusals",
            "Requests or responses refused, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.fields = Counter(
            "privacy_field_transforms",
            "Field transforms applied, by direction and transform.",
            ["direction", "transform"],
            registry=self.registry,
        )
        self.unknown_fields = Counter(
            "privacy_unknown_fields",
            "Unclassified fields inside personal-data objects, by route and action taken.",
            ["route", "action"],
            registry=self.registry,
        )
        self.tracking = Counter(
            "privacy_tracking",
            "Tracking events and outbound tracking calls, by purpose and outcome (passed, dropped, outbound_blocked).",
            ["purpose", "outcome"],
            registry=self.registry,
        )
        self.cookies = Counter(
            "privacy_cookies",
            "Cookies removed from responses or expired after withdrawal.",
            ["action"],
            registry=self.registry,
        )
        self.would_have = Counter(
            "privacy_would_have",
            "Decisions enforcement would have taken on routes in report mode, by capability and decision.",
            ["capability", "decision"],
            registry=self.registry,
        )
        self.plan_seconds = Histogram(
            "privacy_plan_seconds",
            "Time spent in privacy steps per planned request (excluding the shop).",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
