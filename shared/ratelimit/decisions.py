"""The count of rate-limit decisions, exported to Prometheus by a collector of its own.

A decision made from a leased token is most of a cached GET's limiter work,
and a prometheus_client Counter's `inc` (a lock, a labelled child) cost a
fifth of it. Decisions are counted in a plain dictionary instead (each API
process runs its requests on one event loop thread), and the collector reads
it when Prometheus scrapes: prometheus_client's documented custom-collector way.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import REGISTRY, CounterMetricFamily
from prometheus_client.registry import Collector

NAME: Final = "cqrs_rate_limit_decisions"
HELP: Final = (
    "Rate-limit decisions by route class and outcome; `source` says who decided: redis, lease (this "
    "process's leased tokens), remembered (a refusal still running), or the fail mode while Redis was "
    "unavailable (local, closed, open)."
)
LABELS: Final = ("route_class", "outcome", "source")

# (route class, outcome, source) -> decisions in this process.
DECIDED: Final[Tally[tuple[str, str, str]]] = Tally()


class DecisionsCollector(Collector):
    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(NAME, HELP, labels=LABELS)
        for labels, count in sorted(DECIDED.items()):
            family.add_metric(list(labels), count)
        yield family


REGISTRY.register(DecisionsCollector())
