"""The read API's request and response bodies (the OpenAPI schema rankers code against)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

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
    "ReadAt",
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


UserId = Annotated[str, Field(min_length=1, max_length=256, pattern=ID_PATTERN)]


class ReadAt(BaseModel):
    """One user read as of one event time (a batch may read a user at several times)."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    as_of: EventTime


def _one_batch(schema: dict[str, Any]) -> None:
    """``user_ids`` (with at most one ``as_of`` for all) or ``reads``, said in the schema."""
    schema["oneOf"] = [
        {"required": ["user_ids"], "not": {"required": ["reads"]}},
        {
            "required": ["reads"],
            "not": {"anyOf": [{"required": ["as_of"]}, {"required": ["user_ids"]}]},
        },
    ]
    for name in ("user_ids", "reads", "as_of"):
        schema["properties"][name].pop("default", None)


class MemoriesIn(BaseModel):
    """Users of the path's tenant to read in one request, and how many chunks each:
    ``user_ids`` (now, or all as of one ``as_of``) or ``reads`` (each user at its own time)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_batch)

    user_ids: (
        Annotated[list[UserId], Field(min_length=1, max_length=MAX_USERS)] | SkipJsonSchema[None]
    ) = None
    reads: (
        Annotated[list[ReadAt], Field(min_length=1, max_length=MAX_USERS)] | SkipJsonSchema[None]
    ) = None
    k: int = Field(default=10, ge=0, le=MAX_K)
    as_of: EventTime | SkipJsonSchema[None] = Field(
        default=None,
        description="Point-in-time read of every user id at this event time. Omitted: now.",
    )

    @model_validator(mode="after")
    def _user_ids_or_reads(self) -> MemoriesIn:
        given = self.model_fields_set
        if ("user_ids" in given) == ("reads" in given):
            raise ValueError("give exactly one of user_ids or reads")
        if "reads" in given and "as_of" in given:
            raise ValueError("as_of goes with user_ids; each of reads carries its own")
        nulls = [n for n in ("user_ids", "reads", "as_of")
                 if n in given and getattr(self, n) is None]  # fmt: skip
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may not be null")
        return self

    def points(self) -> list[tuple[str, float]] | None:
        """(user, t) pairs of a point-in-time read, in request order; None for a read now."""
        if self.reads is not None:
            return [(r.user_id, r.as_of) for r in self.reads]
        if self.as_of is None:
            return None
        return [(u, self.as_of) for u in dict.fromkeys(self.user_ids or ())]


class MemoriesOut(_Out):
    tenant: str
    memories: list[MemoryOut] = Field(
        description="One per distinct user id (per request entry with a list of as_of "
        "times), in request order."
    )


class ScoredChunkOut(ChunkOut):
    similarity: float = Field(description="Cosine similarity to the query.")
    score: float = Field(description="similarity x strength; chunks are sorted by it.")


_QUERY_KEYS = ("query", "embedding", "item_ids")


def _one_query(schema: dict[str, Any]) -> None:
    """Exactly one of the three query keys, said in the schema as the server checks it;
    keys that may be absent but never null carry no ``default: null``."""
    schema["oneOf"] = [{"required": [key]} for key in _QUERY_KEYS]
    for name in (*_QUERY_KEYS, "as_of"):
        schema["properties"][name].pop("default", None)


class RetrieveIn(BaseModel):
    """Exactly one of ``query``, ``embedding`` and ``item_ids``, and how many chunks.

    A key is given when it is present, so an explicit ``null`` is refused as the schema
    refuses it (the three are not nullable there).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_query)

    query: (
        Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\S")] | SkipJsonSchema[None]
    ) = None
    embedding: (
        Annotated[list[float], Field(min_length=1, max_length=8192)] | SkipJsonSchema[None]
    ) = None
    item_ids: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=256)]],
            Field(min_length=1, max_length=1000),
        ]
        | SkipJsonSchema[None]
    ) = None
    k: int = Field(default=10, ge=0, le=MAX_K)
    as_of: EventTime | SkipJsonSchema[None] = Field(
        default=None, description="Match the beliefs held at this event time (epoch s)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RetrieveIn:
        given = [n for n in _QUERY_KEYS if n in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of query, embedding or item_ids (got {given or 'none'})"
            )
        nulls = [n for n in ("query", "embedding", "item_ids", "as_of")
                 if n in self.model_fields_set and getattr(self, n) is None]  # fmt: skip
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may not be null")
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
