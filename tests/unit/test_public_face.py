"""memory_store's public face: every exported name resolves, and a pure import stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import memory_store
from memory_store import _HOME


def test_every_exported_name_is_the_object_of_its_home_module() -> None:
    assert sorted(memory_store.__all__) == sorted(_HOME)
    for name in memory_store.__all__:
        home = importlib.import_module(f"memory_store.{_HOME[name]}")
        assert getattr(memory_store, name) is getattr(home, name)


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = memory_store.no_such_name  # type: ignore[attr-defined]


def test_importing_the_event_model_does_not_load_lancedb_or_torch() -> None:
    code = (
        "import sys, memory_store.events; print('lancedb' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
