"""The six MARS lifecycle operations as pure functions: (snapshot, inputs, params) -> Delta.

None of them does I/O or reads a clock; time and embeddings come in as
arguments, so a planner, a stream worker and a test can all drive them alike.
"""

from memory_store.operations.absorption import Absorbed, absorb_stream
from memory_store.operations.consolidation import consolidation, cosine, merge_chunks
from memory_store.operations.extraction import Embedder, embed_all, extraction
from memory_store.operations.forgetting import (
    decay_time,
    effective_strength,
    expired_events,
    forgetting,
)
from memory_store.operations.norm_update import norm_update
from memory_store.operations.params import LifecycleParams
from memory_store.operations.reinforcement import reinforced, reinforcement
from memory_store.operations.resynthesis import (
    NEUTRAL_NARRATIVE,
    Narrator,
    resynthesis,
    template_narrative,
    top_chunks,
)
from memory_store.operations.weakening import weakened, weakening

__all__ = [
    "NEUTRAL_NARRATIVE",
    "Absorbed",
    "Embedder",
    "LifecycleParams",
    "Narrator",
    "absorb_stream",
    "consolidation",
    "cosine",
    "decay_time",
    "effective_strength",
    "embed_all",
    "expired_events",
    "extraction",
    "forgetting",
    "merge_chunks",
    "norm_update",
    "reinforced",
    "reinforcement",
    "resynthesis",
    "template_narrative",
    "top_chunks",
    "weakened",
    "weakening",
]
