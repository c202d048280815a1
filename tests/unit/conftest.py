"""The unit tier is pure: no LanceDB, no embedding model. Held here, not hoped for.

A test that needs either belongs in ``tests/store``; one that opens LanceDB or
loads MiniLM from here fails with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import lancedb
import pytest


def _no_lancedb(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a unit test opened LanceDB: move it to tests/store")


@pytest.fixture(autouse=True)
def pure(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lancedb, "connect", _no_lancedb)
    yield
    assert "sentence_transformers" not in sys.modules, (
        "a unit test loaded the embedding model: move it to tests/store"
    )
