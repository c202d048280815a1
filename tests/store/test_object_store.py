"""The memory on an S3-compatible object store (moto_server on loopback), as workers on
several hosts share it: written through one connection, read through another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from memory_store.lance.db import configure_storage
from memory_store.lance.store import open_store
from streams.settings import Settings, StorageSettings
from tests.object_store import ObjectStore
from tests.store.test_store import record


@pytest.fixture
def s3_uri(object_store: ObjectStore) -> Iterator[str]:
    configure_storage(object_store.storage.lance_options())
    try:
        yield f"s3://{object_store.bucket()}/memory"
    finally:
        configure_storage({})


def test_events_written_to_the_object_store_are_read_by_another_connection_once(
    s3_uri: str,
) -> None:
    writer = open_store(s3_uri)
    assert writer.write_events([record(i) for i in range(200)]).inserted == 200
    assert writer.write_events([record(i) for i in range(150, 250)]).inserted == 50
    writer.compact()
    reader = open_store(s3_uri)  # another worker's connection (another host, same bucket)
    assert reader.count_events() == 250
    assert reader.write_events([record(i) for i in range(250)]).inserted == 0
    alice = reader.read_user("acme", "u3", limit=3)
    assert alice.event_count == 50 and len(alice.recent_events) == 3


def test_without_credentials_the_store_refuses_rather_than_use_the_default_chain(
    object_store: ObjectStore,
) -> None:
    uri = f"s3://{object_store.bucket()}/memory"
    configure_storage({})
    with pytest.raises(ValueError, match="no object-store credentials"):
        open_store(uri)


def test_an_s3_uri_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="ACCESS_KEY_ID"):
        Settings(lancedb_uri="s3://bucket/memory", _env_file=None)  # type: ignore[call-arg]
    ok = Settings(lancedb_uri="s3://bucket/memory", _env_file=None,  # type: ignore[call-arg]
                  storage=StorageSettings(access_key_id="k", secret_access_key="s"))  # type: ignore[arg-type]  # fmt: skip
    assert ok.storage.lance_options()["aws_secret_access_key"] == "s"
    assert "s" not in repr(ok.storage.secret_access_key)
