"""Watching a worker from outside: its /metrics, and the plans it publishes.

The evaluation must read memory only once the worker is done with the replayed
history: every event consumed, and every maintenance decision about those
events taken and run. Consumption shows on /metrics. Settling:

* every policy (``fixed`` included, now that the planner runs it too): a
  planner round that finds nobody to plan for shows nowhere, so a sentinel
  event (another tenant, a neutral 3-star rating of an unknown item: it teaches
  nothing) is produced and the plans topic read until the sentinel's plan
  appears. Rounds run one after another and plan every user touched before
  them, so once the plan of a second sentinel appears, the round that planned
  the first (and every training user still pending then) has also run its
  operations. The sentinel's own operations are subtracted from the counts.
* a worker whose ``fixed`` interval publishes no plans at all (the maintenance
  pass outside the planner) counts passes instead: each is counted
  (``beliefstream_maintain_seconds_count``) even when it visits nobody, so two
  more passes per sentinel mean a whole pass began after it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.kafka.options import reader_options
from streams.settings import Settings
from streams.tools.processes import WorkerProcess

__all__ = ["PlanLog", "Status", "labelled", "wait_until"]

Status = Callable[[str, float | None, float | None], None]
"""Progress callback: what is happening, and how far (done, total) when that is known."""


def wait_until(
    worker: WorkerProcess,
    done: Callable[[], bool],
    timeout_s: float,
    what: str,
    tick: Callable[[], None] | None = None,
    progress: Callable[[], float] | None = None,
) -> None:
    """Poll ``done`` every 0.2 s; RuntimeError (with the worker's log) on exit or timeout.

    With ``progress`` the timeout guards a stall, not the whole wait: every rise of
    ``progress()`` restarts it, so a worker sharing the cores with another run takes the
    time it needs, and one that stops moving still fails after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    seen = progress() if progress is not None else 0.0
    while not done():
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.proc.returncode}) {what}:\n"
                               f"{worker.log_tail()}")  # fmt: skip
        if progress is not None and (now := progress()) > seen:
            seen, deadline = now, time.monotonic() + timeout_s
        if time.monotonic() > deadline:
            stalled = "without progress " if progress is not None else ""
            raise RuntimeError(
                f"timed out after {timeout_s:.0f}s {stalled}{what}:\n{worker.log_tail()}"
            )
        if tick is not None:
            tick()
        time.sleep(0.2)


def labelled(metrics: dict[str, float], name: str) -> dict[str, float]:
    """The samples of one labelled metric by label value, e.g. ops_run_total by op."""
    out: dict[str, float] = {}
    prefix = name + "{"
    for key, value in metrics.items():
        if key.startswith(prefix):
            label = key[len(prefix) : -1].split("=", 1)[1].strip('"')
            out[label] = out.get(label, 0.0) + value
    return out


class PlanLog:
    """Every record on a worker's plans topic, read without a consumer group."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = KafkaConsumer(**reader_options(settings, f"{settings.app_id}-eval-plans"))
        parts = [TopicPartition(settings.topic_plans, p) for p in range(settings.partitions)]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self.records: list[dict[str, Any]] = []

    def poll(self) -> None:
        """Read whatever arrived since the last poll."""
        for batch in self._consumer.poll(timeout_ms=100, max_records=10_000).values():
            self.records.extend(json.loads(r.value) for r in batch)

    def plans_for(self, tenant: str, user_id: str) -> int:
        """How many plans named this user so far."""
        return sum(
            1 for r in self.records if r.get("type") == "plan" and [tenant, user_id] in r["users"]
        )

    def outcomes_for(self, tenant: str) -> dict[str, int]:
        """Operations run for this tenant's users, by operation, per the outcome records."""
        ops = Counter(
            str(r["op"])
            for r in self.records
            if r.get("type") == "outcome" and r["tenant"] == tenant
        )
        return dict(ops)

    def close(self) -> None:
        self._consumer.close()
