"""Scheduled operations: persistent per-partition job stores, one owner, survive restarts."""

from __future__ import annotations

import threading
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from streams.worker.scheduler import PlanScheduler, ScheduledOp, partition_for

OP = ScheduledOp("acme", "u1", "forgetting", "plan-1", {"forget_threshold": 0.1})


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.sqlite'}"


def test_users_map_to_the_partition_kafka_puts_their_key_in() -> None:
    parts = list(range(7))
    for key in (b"u1", b"user-42", b"\xff\x00", "émile".encode()):
        assert partition_for(key, 7) == DefaultPartitioner()(key, parts, parts)


def test_only_owned_partitions_take_jobs_and_a_newer_plan_replaces_the_older(
    tmp_path: Path,
) -> None:
    sched = PlanScheduler(url(tmp_path), lambda op: None)
    try:
        sched.own({0, 1})
        assert not sched.schedule(OP, 2, 3600)
        assert sched.schedule(OP, 1, 3600) and sched.pending() == 1
        assert sched.schedule(ScheduledOp("acme", "u1", "forgetting", "plan-2"), 1, 60)
        assert sched.pending() == 1 and sched.job_ids() == {OP.job_id}
        sched.cancel(OP, 1)
        assert sched.pending() == 0 and sched.job_ids() == set()
    finally:
        sched.shutdown()


def test_jobs_survive_a_restart_and_follow_their_partition(tmp_path: Path) -> None:
    first = PlanScheduler(url(tmp_path), lambda op: None)
    first.own({3})
    assert first.schedule(OP, 3, 3600)
    first.shutdown()

    ran: list[ScheduledOp] = []
    second = PlanScheduler(url(tmp_path), ran.append)
    try:
        second.own({1})  # another partition: its store holds nothing of ours
        assert second.pending() == 0
        second.own({1, 3})  # partition 3 assigned: its job is back
        assert second.pending() == 1
        second.own({1})  # revoked: this worker no longer sees it ...
        assert second.pending() == 0
        second.own({3})  # ... but the store kept it for the next owner
        assert second.pending() == 1 and ran == []
    finally:
        second.shutdown()


def test_a_due_job_runs_once_with_its_operation(tmp_path: Path) -> None:
    fired = threading.Event()
    ran: list[ScheduledOp] = []

    def run(op: ScheduledOp) -> None:
        ran.append(op)
        fired.set()

    sched = PlanScheduler(url(tmp_path), run)
    try:
        sched.own({0})
        assert sched.schedule(OP, 0, 0.1)
        assert fired.wait(10)
        assert ran == [OP]
        assert sched.pending() == 0
    finally:
        sched.shutdown()
