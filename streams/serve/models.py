"""The read API's request and response bodies (the OpenAPI schema rankers code against)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memory_store.keys import ID_PATTERN

__all__ = [
    "MAX_K",
    "MAX_USERS",
    "CandidatesOut",
    "ChunkOut",
    "ErrorOut",
    "EventOut",
    "HealthOut",
    "MemoriesIn",
    "MemoriesOut",
    "MemoryOut",
    "ProfileOut",
    "RetrieveIn",
    "RetrieveOut",
    "ScoredChunkOut",
]

MAX_K = 1000
# Users per batch read: one LanceDB read per tier for all of them.
MAX_USERS = 1000


#: An event time (epoch seconds) a point-in-time read is taken at.
EventTime = Annotated[float, Field(allow_inf_nan=False)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class ProfileOut(_Out):
    narrative: str
    version: int
    built_at: float
    sources: int = Field(description="How many chunk versions the narrative was built from.")


class ChunkOut(_Out):
    chunk_id: str
    facet: str
    key: str = Field(description="The belief's name within its facet, the same for every user.")
    text: str
    polarity: Literal["like", "dislike"]
    strength: float = Field(description="Strength decayed to the time of the read.")
    evidence_count: int
    last_seen: float


class EventOut(_Out):
    event_id: str
    item_id: str
    type: str
    value: float | None
    ts: float


class MemoryOut(_Out):
    tenant: str
    user_id: str
    version: int = Field(description="Change version the memory was read at (-1: none heard).")
    profile: ProfileOut | None
    chunk_count: int = Field(description="All of the user's chunks, not only those returned.")
    chunks: list[ChunkOut] = Field(description="The k strongest chunks, strongest first.")
    events: list[EventOut] = Field(description="Recent events, newest first.")


class MemoriesIn(BaseModel):
    """Users of the path's tenant to read in one request, and how many chunks each."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[Annotated[str, Field(min_length=1, max_length=256, pattern=ID_PATTERN)]] = Field(
        min_length=1, max_length=MAX_USERS
    )
    k: int = Field(default=10, ge=0, le=MAX_K)
    as_of: EventTime | list[EventTime] | None = Field(
        default=None,
        description="Point-in-time read: one event time for every user, or one per user id "
        "(then a user may appear again at another time). Omitted: the memory now.",
    )

    @model_validator(mode="after")
    def _one_time_per_user(self) -> MemoriesIn:
        if isinstance(self.as_of, list) and len(self.as_of) != len(self.user_ids):
            raise ValueError(
                f"as_of holds {len(self.as_of)} times for {len(self.user_ids)} user ids"
            )
        return self

    def reads(self) -> list[tuple[str, float]] | None:
        """(user, t) pairs of a point-in-time read, in request order; None for a read now."""
        if self.as_of is None:
            return None
        if isinstance(self.as_of, list):
            return list(zip(self.user_ids, self.as_of, strict=True))
        return [(u, self.as_of) for u in dict.fromkeys(self.user_ids)]


class MemoriesOut(_Out):
    tenant: str
    memories: list[MemoryOut] = Field(
        description="One per distinct user id (per request entry with a list of as_of "
        "times), in request order."
    )


class ScoredChunkOut(ChunkOut):
    similarity: float = Field(description="Cosine similarity to the query.")
    score: float = Field(description="similarity x strength; chunks are sorted by it.")


class RetrieveIn(BaseModel):
    """Exactly one of ``query``, ``embedding`` and ``item_ids``, and how many chunks."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, min_length=1, max_length=4096)
    embedding: list[float] | None = Field(default=None, min_length=1, max_length=8192)
    item_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    k: int = Field(default=10, ge=0, le=MAX_K)
    as_of: EventTime | None = Field(
        default=None, description="Match the beliefs held at this event time (epoch s)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RetrieveIn:
        given = [n for n in ("query", "embedding", "item_ids") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of query, embedding or item_ids (got {given or 'none'})"
            )
        return self


class RetrieveOut(_Out):
    tenant: str
    user_id: str
    chunks: list[ScoredChunkOut] = Field(description="Best matches first.")


class CandidatesOut(_Out):
    tenant: str
    user_id: str
    items: list[str] = Field(description="Item ids, best first; the user's recent items left out.")


class HealthOut(_Out):
    status: Literal["ok"] = "ok"


class ErrorOut(BaseModel):
    detail: str
