"""Prometheus metrics of a worker, on a registry of its own.

A registry per worker (not the process-global one) keeps tests and
benchmarks that build several apps in one process from colliding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]

_NS = "beliefstream"


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter(
            f"{_NS}_events_consumed", "Messages read from the interactions topic.", registry=r
        )
        self.written = Counter(
            f"{_NS}_events_written", "Events newly stored in the event tier.", registry=r
        )
        self.duplicates = Counter(
            f"{_NS}_events_duplicate",
            "Valid events not stored again because their event id was already stored.",
            registry=r,
        )
        self.rejected = Counter(
            f"{_NS}_events_rejected",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.batch_write_seconds = Histogram(
            f"{_NS}_batch_write_seconds",
            "Time to write one batch to the event tier.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            f"{_NS}_batch_size",
            "Messages per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{_NS}_consumer_lag",
            "Messages behind the partition's high watermark after the last batch.",
            ["topic", "partition"],
            registry=r,
        )
        self.last_write = Gauge(
            f"{_NS}_last_write_timestamp_seconds",
            "Unix time of the last successful event-tier write.",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            f"{_NS}_assigned_partitions",
            "Interactions partitions this worker owns after the last rebalance.",
            registry=r,
        )
        self.agent_alive = Gauge(
            f"{_NS}_agent_alive", "1 while the ingest agent runs, 0 once it died.", registry=r
        )
        self.agent_crashes = Counter(
            f"{_NS}_agent_crashes", "Ingest agent crashes (each ends the worker).", registry=r
        )
        self.commit_failures = Counter(
            f"{_NS}_commit_failures",
            "Offset commits that failed after their batch was stored (it will be replayed).",
            registry=r,
        )
        self.compactions = Counter(
            f"{_NS}_compactions",
            "Event-tier compactions by outcome.",
            ["outcome"],
            registry=r,
        )

        self.items_stored = Counter(
            f"{_NS}_items_stored", "Catalogue items stored from the items topic.", registry=r
        )
        self.items_rejected = Counter(
            f"{_NS}_items_rejected",
            "Items topic messages sent to its dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.users_changed = Counter(
            f"{_NS}_users_changed",
            "Users whose beliefs a pass changed, by pass (absorb after a batch, maintain).",
            ["phase"],
            registry=r,
        )
        self.maintained_users = Counter(
            f"{_NS}_maintained_users", "Users visited by scheduled maintenance.", registry=r
        )
        self.maintain_seconds = Histogram(
            f"{_NS}_maintain_seconds",
            "Time of one maintenance pass (consolidation, forgetting, resynthesis).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.maintain_pending = Gauge(
            f"{_NS}_maintain_pending_users",
            "Users touched since their last maintenance, after the last pass.",
            registry=r,
        )
        self.rounds = Counter(
            f"{_NS}_planner_rounds",
            "Event-time planner rounds run: at a round boundary, or closing a quiet partition.",
            ["trigger"],
            registry=r,
        )
        self.plans = Counter(
            f"{_NS}_plans",
            "Per-user plans decided, by the policy that decided them.",
            ["policy"],
            registry=r,
        )
        self.plan_fallbacks = Counter(
            f"{_NS}_plan_fallbacks",
            "Users the rules decided for instead of the LLM: budget, timeout, error, invalid:*.",
            ["cause"],
            registry=r,
        )
        self.planned_ops = Counter(
            f"{_NS}_planned_ops",
            "Operations in plans, by operation and when (now, after_events, at).",
            ["op", "when"],
            registry=r,
        )
        self.ops_run = Counter(
            f"{_NS}_ops_run",
            "Maintenance operations run (any policy): consolidation and forgetting per user, "
            "resynthesis per profile built.",
            ["op"],
            registry=r,
        )
        self.llm_calls = Counter(f"{_NS}_llm_calls", "Planner LLM calls.", registry=r)
        self.llm_tokens = Counter(
            f"{_NS}_llm_tokens", "Planner LLM tokens, by kind.", ["kind"], registry=r
        )
        self.llm_latency = Histogram(
            f"{_NS}_llm_call_seconds",
            "Time of one planner LLM call.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.scheduled_ops = Gauge(
            f"{_NS}_scheduled_ops",
            "Planned operations waiting in the job stores of the partitions this worker owns.",
            registry=r,
        )
        self.items_tagged = Counter(
            f"{_NS}_items_tagged",
            "Catalogue items that came without genres: tagged by the LLM extractor, or untagged.",
            ["outcome"],
            registry=r,
        )
        self.narratives = Counter(
            f"{_NS}_llm_narratives",
            "Profiles the LLM narrator handled: written (llm) or why the template stood in.",
            ["outcome"],
            registry=r,
        )
        self.notices_sent = Counter(
            f"{_NS}_change_notices",
            "Memory-change notices published for readers' caches.",
            registry=r,
        )
        self._codebook_metrics(r)

    def _codebook_metrics(self, r: CollectorRegistry) -> None:
        """The item codebook: real-time indexing per items batch, the rest per upkeep."""
        self.codebook_items = Counter(
            f"{_NS}_codebook_items_indexed",
            "Items from the items topic given codes at once (indexed), or not: the tenant has "
            "no codebook model yet, or the item could not be encoded (unindexed).",
            ["outcome"],
            registry=r,
        )
        self.codebook_assign_seconds = Histogram(
            f"{_NS}_codebook_assign_seconds",
            "Time to assign one item its codes (after the batch's embedding).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=r,
        )
        self.codebook_updates = Counter(
            f"{_NS}_codebook_updates",
            "Codebook models fitted (a tenant's first) or refreshed, and upkeep errors.",
            ["kind"],
            registry=r,
        )
        self.codebook_indexed = Gauge(
            f"{_NS}_codebook_items",
            "Items in a tenant's codebook, per facet, at the last upkeep.",
            ["tenant", "facet"],
            registry=r,
        )
        self.codebook_utilisation = Gauge(
            f"{_NS}_codebook_utilisation",
            "Codes in use / levels x codebook size, per tenant and facet.",
            ["tenant", "facet"],
            registry=r,
        )
        self.codebook_leaf_size = Gauge(
            f"{_NS}_codebook_leaf_size",
            "Items per code path (leaf): p50, p99 and max, per tenant and facet.",
            ["tenant", "facet", "quantile"],
            registry=r,
        )
        self.codebook_churn = Gauge(
            f"{_NS}_codebook_churn",
            "Share of items whose code path changed at the tenant's last refresh, per facet.",
            ["tenant", "facet"],
            registry=r,
        )
