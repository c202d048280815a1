"""Shared fixtures: one real Tansu broker per test session, LanceDB in temp dirs."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.tools.broker import Broker, start_broker
from tests.object_store import ObjectStore, start_object_store

_names = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    started = start_broker()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """One S3-compatible server on loopback for the whole session (a bucket per test)."""
    started = start_object_store()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def llm_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One de-quantized copy of the packaged LLM (~30 s to make, 0.5 GB) for the whole session."""
    folder = tmp_path_factory.mktemp("llm-cache")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def settings(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for one test: its own topics, consumer group and LanceDB directory."""
    n = next(_names)
    return Settings(
        bootstrap_servers=broker.bootstrap_servers,
        app_id=f"bs-test-{n}",
        topic_interactions=f"interactions-{n}",
        topic_items=f"items-{n}",
        topic_changes=f"changes-{n}",
        topic_plans=f"plans-{n}",
        lancedb_uri=str(tmp_path_factory.mktemp(f"lancedb-{n}")),
        batch_size=500,
        batch_seconds=0.2,
        metrics_port=0,
        _env_file=None,  # type: ignore[call-arg]
    )
