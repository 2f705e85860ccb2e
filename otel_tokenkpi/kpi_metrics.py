"""The ``tokenkpi.*`` metrics: waste tokens by kind, cost, context utilization, outcomes.

The engine records them once per model call, sampled or not, so a head
sampler that drops spans never hides spent tokens. Attributes stay
low-cardinality (provider, operation, model, waste kind); the user's own
attributes join only when the user opts in, since they may be unbounded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from . import semconv as sc
from .invocation import FinishedCall

if TYPE_CHECKING:
    from .waste import WasteKind

SCOPE = "otel_tokenkpi"


def create_histogram(meter: Any, name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
    """A histogram with the bucket boundaries the semantic conventions advise (``semconv.*_BUCKETS``): the
    SDK's defaults are made for milliseconds and would put every token count or ratio in one bucket."""
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
    )


class KPIMetrics:
    def __init__(self, meter_provider: Any = None) -> None:
        from .version import __version__

        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.waste_tokens = meter.create_counter(
            sc.METRIC_WASTE_TOKENS, unit="{token}", description="Tokens wasted, by kind (tokenkpi.waste.kind)"
        )
        self.cost = meter.create_counter(sc.METRIC_COST_USD, unit="USD", description="Estimated price of model calls")
        self.utilization = create_histogram(
            meter,
            sc.METRIC_CONTEXT_UTILIZATION,
            "1",
            "Input tokens / the model's context window",
            sc.UTILIZATION_BUCKETS,
        )
        self.outcomes = meter.create_counter(
            sc.METRIC_OUTCOMES, unit="{outcome}", description="Outcomes recorded with record_outcome()"
        )

    def add_call(
        self,
        record: FinishedCall,
        waste_by_kind: dict[WasteKind, int],
        cost_usd: float | None,
        utilization: float | None,
        user_attributes: dict[str, Any],
    ) -> None:
        request = record.request
        attrs: dict[str, Any] = dict(user_attributes)
        attrs.update({sc.OPERATION_NAME: request.operation, sc.PROVIDER_NAME: request.provider})
        if request.model:
            attrs[sc.REQUEST_MODEL] = request.model
        for kind, tokens in waste_by_kind.items():
            if tokens > 0:
                self.waste_tokens.add(tokens, {**attrs, sc.WASTE_KIND: kind.value})
        if cost_usd is not None:
            self.cost.add(cost_usd, attrs)
        if utilization is not None:
            self.utilization.record(utilization, attrs)

    def record_outcome(self, success: bool, user_attributes: dict[str, Any]) -> None:
        self.outcomes.add(1, {**user_attributes, sc.OUTCOME: "success" if success else "failure"})


def metric_user_attributes(user_attributes: dict[str, Any], opt_in: bool | Collection[str]) -> dict[str, Any]:
    """The user's attributes allowed on metrics: none, all (True), or the named keys."""
    if not opt_in or not user_attributes:
        return {}
    if opt_in is True:
        return dict(user_attributes)
    return {key: value for key, value in user_attributes.items() if key in opt_in}
