"""Planned operations due later, kept by APScheduler in a persistent job store per partition.

A plan may say "forget this user's weak beliefs in 3 days". That job must
survive a worker restart, and it must run on exactly one worker: the one that
owns the user's partition. So each partition has its own job-store table
(SQLite file by default, any SQLAlchemy URL in production); a worker opens the
stores of the partitions it is assigned and closes them when they are revoked,
and the next owner, reading the same database, picks the jobs up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from kafka.partitioner.default import murmur2

from memory_store.keys import join_key

__all__ = ["PlanScheduler", "ScheduledOp", "partition_for"]

log = logging.getLogger(__name__)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` in (murmur2, as the Java client)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class ScheduledOp:
    """One maintenance operation for one user, planned for later."""

    tenant: str
    user_id: str
    op: str
    plan_id: str
    args: dict[str, float] = field(default_factory=dict)
    why: str = ""

    @property
    def job_id(self) -> str:
        """One job per (user, operation): a newer plan replaces the older schedule."""
        return join_key(self.tenant, self.user_id, self.op)


# The running scheduler's callback: jobs are stored by reference to ``_fire``, a module
# function, so they can be loaded after a restart; ``_fire`` hands them to this.
_runner: Callable[[ScheduledOp], None] | None = None


def _fire(payload: dict[str, Any]) -> None:
    if _runner is None:
        raise RuntimeError("a planned operation fired with no scheduler running")
    _runner(ScheduledOp(**payload))


class PlanScheduler:
    """Date jobs in per-partition stores; ``run`` is called (in a scheduler thread) when due."""

    def __init__(self, url: str, run: Callable[[ScheduledOp], None]) -> None:
        global _runner
        self.url = url
        _runner = run
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            # A job missed while no worker ran (restart, rebalance) still runs, once.
            job_defaults={"misfire_grace_time": None, "coalesce": True},
            timezone=UTC,
        )
        self._scheduler.start()
        self.owned: set[int] = set()

    @staticmethod
    def _alias(partition: int) -> str:
        return f"p{partition}"

    def own(self, partitions: Iterable[int]) -> None:
        """Open the job stores of newly assigned partitions, close those revoked."""
        wanted = set(partitions)
        for gone in sorted(self.owned - wanted):
            self._scheduler.remove_jobstore(self._alias(gone))
        for new in sorted(wanted - self.owned):
            store = SQLAlchemyJobStore(url=self.url, tablename=f"beliefstream_jobs_p{new}")
            self._scheduler.add_jobstore(store, alias=self._alias(new))
        self.owned = wanted

    def schedule(self, op: ScheduledOp, partition: int, delay_s: float) -> bool:
        """Run ``op`` in ``delay_s`` seconds; False if this worker does not own ``partition``."""
        if partition not in self.owned:
            return False
        self._scheduler.add_job(
            _fire,
            trigger="date",
            run_date=datetime.now(UTC) + timedelta(seconds=max(0.0, delay_s)),
            args=[asdict(op)],
            id=op.job_id,
            jobstore=self._alias(partition),
            replace_existing=True,
        )
        return True

    def cancel(self, op: ScheduledOp, partition: int) -> None:
        """Drop a schedule superseded by an operation that ran now."""
        if partition in self.owned:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(op.job_id, jobstore=self._alias(partition))

    def job_ids(self) -> set[str]:
        """Ids of the jobs waiting in the stores this worker owns (one read per store)."""
        return {job.id for job in self._scheduler.get_jobs()}

    def pending(self) -> int:
        """Jobs waiting in the stores this worker owns (the scheduler queue size)."""
        return len(self._scheduler.get_jobs())

    def shutdown(self) -> None:
        global _runner
        self._scheduler.shutdown(wait=False)
        _runner = None
