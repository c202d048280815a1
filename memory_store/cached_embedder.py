"""An embedder with a memory: topics and template narratives repeat across users."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from memory_store.operations import Embedder

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    """An embedder that remembers its last ``max_entries`` texts.

    Extracted topics repeat across users ("Comedy", "1990s") and so do template
    narratives, so most calls never reach the model.
    """

    def __init__(self, embed: Embedder, max_entries: int = 50_000) -> None:
        self._embed = embed
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self.calls = 0

    def dry_run(self) -> tuple[Embedder, list[str]]:
        """An embedder that only notes what it is asked (cached vectors, else empty ones).

        Running a pass with it first, then ``self(noted)`` once, turns a model call
        per user into one batched call per pass.
        """
        noted: list[str] = []

        def note(texts: Sequence[str]) -> list[tuple[float, ...]]:
            noted.extend(t for t in texts if t not in self._cache)
            return [self._cache.get(t, ()) for t in texts]

        return note, noted

    def __call__(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self.calls += 1
            vectors = self._embed(missing)
            if len(vectors) != len(missing):
                raise ValueError(f"embedder returned {len(vectors)} vectors for {len(missing)}")
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = tuple(float(x) for x in vector)
        out = []
        for text in texts:
            self._cache.move_to_end(text)
            out.append(self._cache[text])
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return out
