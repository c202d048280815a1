"""beliefstream's memory of every user: three tiers, six operations, one writer, many readers.

The public face: what a ranker or a pipeline uses, importable from here. The
modules behind it stay importable (tests and the worker use them), but these
names are the ones kept stable. Names resolve on first use, so importing a pure
module (``memory_store.events``) does not load LanceDB.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory_store.change_notice import ChangeNotice
    from memory_store.events import EventType, Interaction, Item
    from memory_store.keeper import MemoryKeeper
    from memory_store.lance.catalogue import ItemCatalogue, open_catalogue
    from memory_store.lance.planner_state import PlannerStateStore, open_planner_state
    from memory_store.lance.store import open_store
    from memory_store.reader import MemoryReader, ScoredChunk, UserMemoryView
    from memory_store.store import EventRecord, MemoryStore, UserDelta, UserMemory
    from memory_store.tiers import Delta, Polarity, PreferenceChunk, Profile, UserSnapshot

__all__ = [
    "ChangeNotice",
    "Delta",
    "EventRecord",
    "EventType",
    "Interaction",
    "Item",
    "ItemCatalogue",
    "MemoryKeeper",
    "MemoryReader",
    "MemoryStore",
    "PlannerStateStore",
    "Polarity",
    "PreferenceChunk",
    "Profile",
    "ScoredChunk",
    "UserDelta",
    "UserMemory",
    "UserMemoryView",
    "UserSnapshot",
    "open_catalogue",
    "open_planner_state",
    "open_store",
]

_HOME = {
    "ChangeNotice": "change_notice",
    "EventType": "events",
    "Interaction": "events",
    "Item": "events",
    "MemoryKeeper": "keeper",
    "ItemCatalogue": "lance.catalogue",
    "open_catalogue": "lance.catalogue",
    "PlannerStateStore": "lance.planner_state",
    "open_planner_state": "lance.planner_state",
    "open_store": "lance.store",
    "MemoryReader": "reader",
    "ScoredChunk": "reader",
    "UserMemoryView": "reader",
    "EventRecord": "store",
    "MemoryStore": "store",
    "UserDelta": "store",
    "UserMemory": "store",
    "Delta": "tiers",
    "Polarity": "tiers",
    "PreferenceChunk": "tiers",
    "Profile": "tiers",
    "UserSnapshot": "tiers",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'memory_store' has no attribute {name!r}")
    value = getattr(import_module(f"memory_store.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
