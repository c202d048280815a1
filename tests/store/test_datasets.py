"""Datasets load as contract-valid Kafka values, in time order, without a broker."""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path

import pytest

from memory_store.events import Interaction, Item
from streams.tools.datasets import Dataset, _bundled_dir, load_dataset


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_dataset("ml-100k")


def _data_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip()) - 1  # minus the header


def test_ml100k_counts_order_and_contract(ml100k: Dataset) -> None:
    assert ml100k.name == "ml-100k"
    assert len(ml100k.interactions) == 100_000
    assert len(ml100k.items) == 1_682
    stamps = [r["ts"] for r in ml100k.interactions]
    assert stamps == sorted(stamps)
    assert len({r["event_id"] for r in ml100k.interactions}) == 100_000
    for row in ml100k.interactions:
        assert isinstance(row["user_id"], str) and isinstance(row["item_id"], str)
        assert row["tenant"] == "movielens" and row["type"] == "rate"
        Interaction.model_validate(row)
    for item in ml100k.items:
        Item.model_validate(item)


def test_ml100k_values_match_the_file(ml100k: Dataset) -> None:
    first = next(r for r in ml100k.interactions if r["event_id"] == "ml-100k:196:242:881250949")
    assert first["user_id"] == "196" and first["item_id"] == "242"
    assert first["value"] == 3.0 and isinstance(first["value"], float)
    assert first["ts"] == 881250949
    toy_story = next(i for i in ml100k.items if i["item_id"] == "1")
    assert toy_story["title"] == "Toy Story"
    assert toy_story["attributes"] == {
        "genres": ["Animation", "Children's", "Comedy"],
        "year": 1995,
    }
    assert toy_story["ts"] == min(r["ts"] for r in ml100k.interactions if r["item_id"] == "1")
    unknown = next(i for i in ml100k.items if i["item_id"] == "267")
    assert unknown["attributes"]["year"] is None


def test_ml100k_ties_keep_file_order(ml100k: Dataset) -> None:
    path = _bundled_dir("ml-100k") / "ml-100k.inter"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    file_order = {
        f"ml-100k:{u}:{i}:{t}": n for n, (u, i, _, t) in enumerate(x.split("\t") for x in lines)
    }
    ties = [(a, b) for a, b in itertools.pairwise(ml100k.interactions) if a["ts"] == b["ts"]]
    assert ties  # ml-100k has same-second ratings
    for a, b in ties:
        assert file_order[a["event_id"]] < file_order[b["event_id"]]


def test_limit_keeps_first_events_and_their_items(ml100k: Dataset) -> None:
    small = load_dataset("ml-100k", tenant="acme", limit=500)
    assert len(small.interactions) == 500
    expected = [{**r, "tenant": "acme"} for r in ml100k.interactions[:500]]
    assert small.interactions == expected
    used = {r["item_id"] for r in small.interactions}
    assert {i["item_id"] for i in small.items} == used
    assert all(i["tenant"] == "acme" for i in small.items)
    assert load_dataset("ml-100k", limit=0) == Dataset("ml-100k", [], [])


def test_ml1m_counts() -> None:
    started = time.perf_counter()
    data = load_dataset("ml-1m")
    elapsed = time.perf_counter() - started
    base = _bundled_dir("ml-1m")
    assert len(data.interactions) == _data_lines(base / "ml-1m.inter") == 1_000_209
    assert len(data.items) == _data_lines(base / "ml-1m.item") == 3_883
    assert elapsed < 10, f"ml-1m took {elapsed:.1f}s to load"
    stamps = [r["ts"] for r in data.interactions]
    assert stamps == sorted(stamps)
    rng = random.Random(7)
    for row in rng.sample(data.interactions, 2000):
        Interaction.model_validate(row)
    for item in data.items:
        Item.model_validate(item)
    toy_story = next(i for i in data.items if i["item_id"] == "Toy Story (1995)")
    assert toy_story["title"] == "Toy Story"
    assert toy_story["attributes"]["year"] == 1995
    assert data.interactions[0]["user_id"].startswith("1m_")


def test_jsonl_file(tmp_path: Path) -> None:
    rows = [
        {"event_id": "e2", "user_id": "u1", "item_id": "a", "type": "click", "ts": 20},
        {"event_id": "e1", "tenant": "t9", "user_id": "u2", "item_id": "b", "type": "rate",
         "value": 4.5, "ts": "1970-01-01T00:00:10Z", "context": {"device": "tv"}},
        {"kind": "item", "item_id": "a", "title": "A", "ts": 0},
        {"kind": "item", "tenant": "t9", "item_id": "b", "title": "B", "ts": 0},
        {"event_id": "e3", "user_id": "u1", "item_id": "b", "type": "view", "ts": 20},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n\n" + "\n".join(
        json.dumps(r) for r in rows[3:]) + "\n")  # fmt: skip
    data = load_dataset(str(path), tenant="shop")
    assert data.name == "events.jsonl"
    assert [r["event_id"] for r in data.interactions] == ["e1", "e2", "e3"]  # ties keep order
    assert [r["tenant"] for r in data.interactions] == ["t9", "shop", "shop"]
    assert data.interactions[0]["context"] == {"device": "tv"}
    assert data.items == [
        {"tenant": "shop", "item_id": "a", "title": "A", "ts": 0},
        {"tenant": "t9", "item_id": "b", "title": "B", "ts": 0},
    ]
    for row in data.interactions:
        Interaction.model_validate(row)
    limited = load_dataset(str(path), tenant="shop", limit=1)
    assert [r["event_id"] for r in limited.interactions] == ["e1"]
    assert [(i["tenant"], i["item_id"]) for i in limited.items] == [("t9", "b")]


def test_csv_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "kind,event_id,tenant,user_id,item_id,type,value,ts,text,context,title,attributes\n"
        'interaction,e1,,u1,i1,rate,4.5,30,great,"{""device"": ""tv""}",,\n'
        "interaction,e2,t2,u2,i2,view,,2024-01-01T00:00:00,,,,\n"
        ',e3,,u1,i2,click,,10,,,,\n'
        'item,,,,i1,,,5,,,Film One,"{""genres"": [""Drama""]}"\n'
    )  # fmt: skip
    data = load_dataset(str(path), tenant="shop")
    assert data.interactions == [
        {"event_id": "e3", "tenant": "shop", "user_id": "u1", "item_id": "i2", "type": "click",
         "ts": 10},
        {"event_id": "e1", "tenant": "shop", "user_id": "u1", "item_id": "i1", "type": "rate",
         "value": 4.5, "ts": 30, "text": "great", "context": {"device": "tv"}},
        {"event_id": "e2", "tenant": "t2", "user_id": "u2", "item_id": "i2", "type": "view",
         "ts": "2024-01-01T00:00:00"},
    ]  # fmt: skip
    assert data.items == [
        {"tenant": "shop", "item_id": "i1", "title": "Film One", "ts": 5,
         "attributes": {"genres": ["Drama"]}},
    ]  # fmt: skip
    for row in data.interactions:
        Interaction.model_validate(row)
    Item.model_validate(data.items[0])


def test_bad_rows_are_kept_for_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event_id": "x", "ts": "yesterday"}\n{"event_id": "y", "ts": 1}\n')
    data = load_dataset(str(path))
    assert [r["event_id"] for r in data.interactions] == ["x", "y"]  # unreadable ts sorts first


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.jsonl", None, "does not exist"),
        ("missing.csv", None, "does not exist"),
        ("events.txt", "{}\n", "unknown dataset"),
        ("events", "{}\n", "unknown dataset"),
        ("broken.jsonl", '{"a": 1}\nnot json\n', "broken.jsonl:2: not JSON"),
        ("list.jsonl", "[1, 2]\n", "not a JSON object"),
        ("kind.jsonl", '{"kind": "user"}\n', "unknown kind"),
        ("ctx.csv", "event_id,context\ne1,{oops\n", "context is not JSON"),
    ],
)
def test_bad_sources_raise_value_error(
    tmp_path: Path, name: str, content: str | None, match: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_dataset(str(path))


def test_unknown_bundled_name_and_negative_limit() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("ml-20m")
    with pytest.raises(ValueError, match="non-negative"):
        load_dataset("ml-100k", limit=-1)
