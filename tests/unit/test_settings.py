"""The one settings object: environment prefix, parsing, immutability, client options."""

from __future__ import annotations

import pickle

import pydantic
import pytest

from streams.settings import Settings
from streams.tools.processes import settings_env


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BELIEFSTREAM_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("BELIEFSTREAM_TENANTS", " acme, globex ,,")
    monkeypatch.setenv("BELIEFSTREAM_BATCH_SIZE", "250")
    monkeypatch.setenv("BELIEFSTREAM_INGEST_ENGINE", "faust-agent")
    monkeypatch.setenv("BOOTSTRAP_SERVERS", "ignored:1")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.tenants == frozenset({"acme", "globex"})
    assert s.batch_size == 250
    assert s.ingest_engine == "faust-agent"
    assert s.topic_dlq == "interactions.dlq"


def test_is_frozen_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        s.batch_size = 3  # type: ignore[misc]
    monkeypatch.setenv("BELIEFSTREAM_BATCH_SIZE", "0")
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("BELIEFSTREAM_BATCH_SIZE", "10")
    monkeypatch.setenv("BELIEFSTREAM_INGEST_ENGINE", "spark")
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_plaintext_needs_no_credentials() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert s.aiokafka_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_options_pass_through() -> None:
    s = Settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="hunter2-sasl",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert s.kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "hunter2-sasl",
    }
    assert s.aiokafka_options() == s.kafka_client_options()
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()


def test_nested_settings_read_the_flat_names_and_secrets_reach_a_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BELIEFSTREAM_CODEBOOK_MIN_ITEMS", "40")
    monkeypatch.setenv("BELIEFSTREAM_CODEBOOK_ENABLED", "false")
    monkeypatch.setenv("BELIEFSTREAM_LLM_API_KEY", "k-123")
    monkeypatch.setenv("BELIEFSTREAM_STORAGE_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("BELIEFSTREAM_STORAGE_ACCESS_KEY_ID", "ak")
    monkeypatch.setenv("BELIEFSTREAM_STORAGE_SECRET_ACCESS_KEY", "sk-456")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.storage.lance_options() == {
        "aws_region": "us-east-1", "allow_http": "false", "aws_endpoint": "http://minio:9000",
        "aws_access_key_id": "ak", "aws_secret_access_key": "sk-456",
    }  # fmt: skip
    assert "sk-456" not in repr(s)
    assert (s.codebook.min_items, s.codebook.enabled, s.codebook.refresh_s) == (40, False, 600.0)
    assert s.llm_api_key is not None and s.llm_api_key.get_secret_value() == "k-123"
    for name in ("BELIEFSTREAM_CODEBOOK_MIN_ITEMS", "BELIEFSTREAM_CODEBOOK_ENABLED",
                 "BELIEFSTREAM_LLM_API_KEY", "BELIEFSTREAM_STORAGE_ENDPOINT",
                 "BELIEFSTREAM_STORAGE_ACCESS_KEY_ID",
                 "BELIEFSTREAM_STORAGE_SECRET_ACCESS_KEY"):  # fmt: skip
        monkeypatch.delenv(name)
    # A child worker gets the settings as variables, the secret itself included ...
    for name, value in settings_env(s).items():
        if name.startswith("BELIEFSTREAM_"):
            monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == s  # type: ignore[call-arg]
    # ... and the writer process as a pickle.
    assert pickle.loads(pickle.dumps(s)) == s


def test_ssl_options_become_a_context_for_aiokafka() -> None:
    s = Settings(security_protocol="SASL_SSL", _env_file=None)  # type: ignore[call-arg]
    plain = s.kafka_client_options()
    assert plain["ssl_cafile"] is None and plain["sasl_mechanism"] == "PLAIN"
    opts = s.aiokafka_options()
    assert "ssl_cafile" not in opts
    assert opts["ssl_context"].verify_mode.name == "CERT_REQUIRED"
