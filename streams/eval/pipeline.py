"""One tiered variant, run for real: its own worker, topics, consumer group and LanceDB.

The worker starts as an operator starts it (``WorkerProcess``), on a store that holds
the item codebook fitted at the cut (``streams.eval.prefit``); the catalogue
known at the cut is produced and stored first (so no event waits for its item,
which would make the policies differ in re-absorption rather than in planning),
then the training split is replayed in timestamp order through the broker. Once
every event is consumed and maintenance has settled (see ``streams.eval.watch``),
the items first seen after the cut are produced too, which shows the catalogue
growing in real time, and the worker is stopped: the memory read afterwards is
final. Operations, LLM calls and tokens come from the worker's /metrics.

With the fixed and rules policies the worker's planner rounds fall on event time
(a round per ``round_event_s`` of the split's history), so what maintenance did
depends on the split alone, not on the replay's pace or the machine's speed; the
llm policy's rounds stay on the wall clock (its budget and deadlines are too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from memory_store.lance.catalogue import open_catalogue
from streams.eval.prefit import NO_REFRESH_S, install
from streams.eval.watch import PlanLog, Status, labelled, wait_until
from streams.settings import CodebookSettings, Settings
from streams.tools.broker import free_port
from streams.tools.datasets import Dataset
from streams.tools.processes import WorkerProcess
from streams.tools.replay import replay

if TYPE_CHECKING:
    from memory_store.codebook.item_codebook import ItemCodebook

__all__ = ["SENTINEL_TENANT", "Policy", "RunOptions", "TieredRun", "run_tiered"]

SENTINEL_TENANT = "eval-sentinel"
# The replay's last open round closes once its partition is caught up and this quiet.
_IDLE_S = 3.0
_SENTINEL_USER = "sentinel"

Policy = Literal["fixed", "rules", "llm"]


@dataclass(frozen=True)
class RunOptions:
    """Worker settings shared by the tiered variants (the llm ones apply to ``llm`` only)."""

    maintain_every_s: float = 5.0  # the llm policy's wall-clock rounds
    # fixed and rules: a planner round per this much event time, whatever the replay's pace
    round_event_s: float = 7 * 86_400.0
    # Replay pace (events/s; None: as fast as possible). A pace the worker sustains gives
    # every policy the same number of maintenance rounds over the same history.
    replay_rate: float | None = 3000.0
    llm_calls_per_min: int = 3
    llm_tokens_per_min: int = 20_000
    llm_timeout_s: float = 60.0
    llm_cache_dir: str | None = None
    # A guard against a stuck worker, not a speed target (the replay: this long without progress).
    timeout_s: float = 1800.0


@dataclass(frozen=True)
class TieredRun:
    """What one worker run did, and where its memory is."""

    variant: str
    policy: Policy
    lancedb_uri: str
    exit_code: int
    # Maintenance operations run on the evaluated tenant (see ``ops_run``).
    ops: int
    ops_by_op: dict[str, int]
    llm_calls: int
    llm_tokens: int
    plans_by_policy: dict[str, int]
    fallbacks: dict[str, int]
    deferred_ops: int  # planned "after N events": waiting, not run
    scheduled_ops: int  # planned "at" a later time: in the job store, not run
    users_changed_by_maintenance: int
    seconds: dict[str, float] = field(default_factory=dict)
    # Event time the replay covered per wall-clock maintenance interval.
    event_days_per_round: float = 0.0
    catalogue_at_cut: frozenset[str] = frozenset()
    catalogue_after: frozenset[str] = frozenset()


def _settings(
    bootstrap: str, root: Path, variant: str, policy: Policy, opts: RunOptions
) -> Settings:
    prefix = f"eval-{variant}"
    return Settings(
        bootstrap_servers=bootstrap,
        app_id=prefix,
        topic_interactions=f"{prefix}-interactions",
        topic_items=f"{prefix}-items",
        topic_changes=f"{prefix}-changes",
        topic_plans=f"{prefix}-plans",
        lancedb_uri=str(root / "lancedb"),
        metrics_port=free_port(),
        maintain_every_s=opts.maintain_every_s,
        # fixed and rules: rounds on event time, so a run's memory is a function of the
        # split, not of the replay's pace or the machine's speed; llm: wall-clock rounds.
        round_clock="event",
        round_event_s=opts.round_event_s,
        round_idle_s=_IDLE_S,
        policy=policy,
        llm_calls_per_min=opts.llm_calls_per_min,
        llm_tokens_per_min=opts.llm_tokens_per_min,
        llm_timeout_s=opts.llm_timeout_s,
        llm_cache_dir=opts.llm_cache_dir,
        # The codebook fitted at the cut (``streams.eval.prefit``), never refreshed mid-run.
        codebook=CodebookSettings(refresh_s=NO_REFRESH_S),
        _env_file=None,  # type: ignore[call-arg]
    )


def run_tiered(
    bootstrap: str,
    root: Path,
    variant: str,
    policy: Policy,
    name: str,
    train: Sequence[Mapping[str, Any]],
    items_at_cut: Sequence[Mapping[str, Any]],
    items_later: Sequence[Mapping[str, Any]],
    tenant: str,
    opts: RunOptions,
    status: Status,
    codebook: ItemCodebook,
) -> TieredRun:
    """Run the worker with ``policy`` over the training split; see the module docstring."""
    root.mkdir(parents=True, exist_ok=True)
    settings = _settings(bootstrap, root, variant, policy, opts)
    install(codebook, tenant, settings.lancedb_uri)  # before the worker: it serves these codes
    seconds: dict[str, float] = {}
    started = time.monotonic()
    worker = WorkerProcess(settings, root / "worker.log")
    plans = PlanLog(settings)
    try:
        status(f"{variant}: starting the worker", None, None)
        wait_until(worker, lambda: worker.metric("beliefstream_assigned_partitions") >= 1,
                   opts.timeout_s, "before owning partitions")  # fmt: skip
        seconds["start"] = time.monotonic() - started
        _produce(settings, name, [], items_at_cut)
        wait_until(worker, lambda: _stored(worker) >= len(items_at_cut), opts.timeout_s,
                   "storing the catalogue")  # fmt: skip
        at_cut = _catalogue(settings, tenant, items_at_cut, items_later)
        mark = time.monotonic()
        _produce(settings, name, list(train), [], opts.replay_rate)
        consumed = "beliefstream_events_consumed_total"
        wait_until(worker, lambda: worker.metric(consumed) >= len(train), opts.timeout_s,
                   "consuming the training split",
                   tick=lambda: status(f"{variant}: replayed → memory", worker.metric(consumed),
                                       len(train)),
                   progress=lambda: worker.metric(consumed))  # fmt: skip
        seconds["replay"] = time.monotonic() - mark
        mark = time.monotonic()
        status(f"{variant}: maintenance settling ({policy})", None, None)
        passes = "beliefstream_maintain_seconds_count"
        first = worker.metric(passes)
        for n in (1, 2):
            _produce(settings, name, [_sentinel(n, train)], [])

            def settled(n: int = n) -> bool:
                plans.poll()
                if plans.plans_for(SENTINEL_TENANT, _SENTINEL_USER) >= n:
                    return True
                # A worker whose fixed interval publishes no plans: count passes instead.
                unplanned = policy == "fixed" and not plans.records
                return unplanned and worker.metric(passes) >= first + 2 * n

            wait_until(worker, settled, opts.timeout_s, "waiting for maintenance to settle")
        seconds["settle"] = time.monotonic() - mark
        _produce(settings, name, [], items_later)
        wait_until(worker, lambda: _stored(worker) >= len(items_at_cut) + len(items_later),
                   opts.timeout_s, "storing the items first seen after the cut")  # fmt: skip
        after = _catalogue(settings, tenant, items_at_cut, items_later)
        metrics = worker.metrics()
        plans.poll()
        code = worker.stop()
        seconds["worker"] = time.monotonic() - started
    finally:
        worker.stop()
        plans.close()
    run = _summarise(variant, policy, settings, code, metrics, plans, seconds, at_cut, after)
    if settings.event_rounds:
        return replace(run, event_days_per_round=round(opts.round_event_s / 86_400, 2))
    span_days = (float(train[-1]["ts"]) - float(train[0]["ts"])) / 86_400 if train else 0.0
    per_round = span_days * opts.maintain_every_s / max(seconds["replay"], 1e-9)
    return replace(run, event_days_per_round=round(per_round, 2))


def _summarise(
    variant: str,
    policy: Policy,
    settings: Settings,
    code: int,
    metrics: dict[str, float],
    plans: PlanLog | None,
    seconds: dict[str, float],
    at_cut: frozenset[str],
    after: frozenset[str],
) -> TieredRun:
    """The run's figures from its last /metrics scrape (and plans, minus the sentinel's)."""
    sentinel = {} if plans is None else plans.outcomes_for(SENTINEL_TENANT)
    ops_by_op = {
        op: int(n) - sentinel.get(op, 0)
        for op, n in labelled(metrics, "beliefstream_ops_run_total").items()
    }
    tokens = labelled(metrics, "beliefstream_llm_tokens_total")
    planned = labelled(metrics, "beliefstream_planned_ops_total")
    deferred = sum(v for k, v in planned.items() if k.endswith("after_events"))
    return TieredRun(
        variant=variant,
        policy=policy,
        lancedb_uri=settings.lancedb_uri,
        exit_code=code,
        ops=sum(ops_by_op.values()),
        ops_by_op=ops_by_op,
        llm_calls=int(metrics.get("beliefstream_llm_calls_total", 0.0)),
        llm_tokens=int(sum(tokens.values())),
        plans_by_policy={
            k: int(v) for k, v in labelled(metrics, "beliefstream_plans_total").items()
        },
        fallbacks={
            k: int(v) for k, v in labelled(metrics, "beliefstream_plan_fallbacks_total").items()
        },
        deferred_ops=int(deferred),
        scheduled_ops=int(metrics.get("beliefstream_scheduled_ops", 0.0)),
        users_changed_by_maintenance=int(
            labelled(metrics, "beliefstream_users_changed_total").get("maintain", 0.0)
        ),
        seconds={k: round(v, 2) for k, v in seconds.items()},
        catalogue_at_cut=at_cut,
        catalogue_after=after,
    )


def _stored(worker: WorkerProcess) -> float:
    return worker.metric("beliefstream_items_stored_total")


def _produce(
    settings: Settings,
    name: str,
    interactions: list[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    rate: float | None = None,
) -> None:
    rows = [dict(r) for r in interactions]
    replay(settings, Dataset(name, rows, [dict(i) for i in items]), rate=rate, progress=False)


def _sentinel(n: int, train: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A neutral event of another tenant: it changes no memory but needs a plan."""
    ts = train[-1]["ts"] if train else 0
    return {"event_id": f"eval-sentinel-{n}", "tenant": SENTINEL_TENANT,
            "user_id": _SENTINEL_USER, "item_id": "eval-sentinel-item", "type": "rate",
            "value": 3.0, "ts": ts}  # fmt: skip


def _catalogue(
    settings: Settings,
    tenant: str,
    *groups: Sequence[Mapping[str, Any]],
) -> frozenset[str]:
    """The item ids of ``groups`` the worker's catalogue (LanceDB) holds right now."""
    wanted = [str(i["item_id"]) for group in groups for i in group]
    found = open_catalogue(settings.lancedb_uri).read_items(tenant, wanted)
    return frozenset(found)
