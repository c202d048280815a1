"""The unit tier is pure: no LanceDB, no embedding model. Held here, not hoped for.

A test that needs either belongs in ``tests/store``; one that opens LanceDB or
loads MiniLM from here fails with the reason. The two seams patched are the only
places the project opens LanceDB (``memory_store.lance.db.connect``, which calls
``lancedb.connect``) and loads the model (``MiniLMEmbedder._load``).
"""

from __future__ import annotations

from typing import Any

import lancedb
import pytest

from memory_store.embedding import MiniLMEmbedder


def _no_lancedb(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test opened LanceDB: move it to tests/store")


def _no_model(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test loaded the embedding model: move it to tests/store")


@pytest.fixture(autouse=True)
def pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lancedb, "connect", _no_lancedb)
    monkeypatch.setattr(MiniLMEmbedder, "_load", _no_model)
