"""Code-path beliefs: co-engagement clusters of the item codebook as topics, and their
consolidation into the parent prefix."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_store.code_paths import (
    CODE_FACET,
    CodedItem,
    CodedItems,
    code_key,
    code_topic,
    code_topics_of,
    is_code_key,
    parent_key,
    path_of,
)
from memory_store.engagement import ENGAGEMENT_FACET
from memory_store.operations import absorb_stream, consolidation
from memory_store.tiers import Polarity, PreferenceChunk, UserSnapshot, apply_delta
from tests.unit.fake_embedding import fake_embed
from tests.unit.test_fold_determinism import EMPTY, P, item, rating


def coded_item(n: int, path: tuple[int, ...], genre: str = "Drama") -> CodedItem:
    topic = code_topic([f"title {path}"])
    return CodedItems()({"x": item(n, [genre])}, {"x": ((code_key("collab", path), topic),)})["x"]


def code_chunks(snap: UserSnapshot) -> dict[tuple[str, str], PreferenceChunk]:
    return {(c.facet, c.key): c for c in snap.chunks if path_of(c) is not None}


def test_keys_name_a_prefix_and_its_parent() -> None:
    assert code_key("collab", (3, 11)) == "collab/3/11"
    assert parent_key("collab/3/11") == "collab/3" and parent_key("collab/3") is None
    assert is_code_key("collab/3/11") and not is_code_key("1990s") and not is_code_key("a/b")
    assert parent_key("drama") is None
    assert code_topic(["Alien (1979)", "Aliens (1986)", "Heat (1995)"]) == (
        "titles like Alien (1979), Aliens (1986)"
    )
    assert code_topic([]) == "a cluster of titles"
    with pytest.raises(ValueError):
        code_key("collab", ())


def test_coded_items_keep_their_fields_and_plain_ones_stay_plain() -> None:
    plain = item(1, ["Drama"])
    out = CodedItems()({"a": plain, "b": plain}, {"a": (("collab/1/2", "titles like x"),)})
    assert isinstance(out["a"], CodedItem) and out["a"].title == plain.title
    assert out["a"].attributes == plain.attributes and out["b"] is plain


def test_a_coded_item_is_the_same_object_until_its_item_or_topics_change() -> None:
    """The facet cache is keyed by identity: batch after batch must hand it one object."""
    make, plain = CodedItems(), item(1, ["Drama"])
    topics = {"a": (("collab/1", "titles like x"),)}
    first = make({"a": plain}, topics)["a"]
    assert make({"a": plain}, dict(topics))["a"] is first
    moved = make({"a": plain}, {"a": (("collab/2", "titles like y"),)})["a"]
    assert moved is not first and code_topics_of(moved) == (("collab/2", "titles like y"),)
    renewed = item(1, ["Comedy"])
    assert make({"a": renewed}, topics)["a"].attributes == renewed.attributes


def test_ratings_of_coded_items_teach_the_cluster_beside_the_genre() -> None:
    catalogue = {"i0": coded_item(0, (3, 11)), "i1": coded_item(1, (3, 11)),
                 "i2": item(2, ["Drama"])}  # fmt: skip
    events = [rating(0, "i0", 5.0, 1.0), rating(1, "i1", 5.0, 2.0), rating(2, "i2", 1.0, 3.0)]
    snap = apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)
    found = code_chunks(snap)
    liked = found[(CODE_FACET, "collab/3/11")]
    assert liked.polarity is Polarity.LIKE and liked.evidence == ("e0", "e1")
    assert liked.text == "likes titles like title (3, 11)"
    engaged = found[(ENGAGEMENT_FACET, "code:collab/3/11")]
    assert engaged.evidence_count == 2 and engaged.text.startswith("engages with titles like")
    assert len(found) == 2  # the plain item (i2) taught its genre only


def _siblings(strengths: list[float], polarity: Polarity = Polarity.LIKE) -> UserSnapshot:
    catalogue = {f"i{n}": coded_item(n, (3, n)) for n in range(len(strengths))}
    events = [rating(n, f"i{n}", 5.0, float(n)) for n in range(len(strengths))]
    snap = apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)
    chunks = [
        c if c.facet != CODE_FACET else _with(c, strengths[int(c.key.rsplit("/", 1)[1])], polarity)
        for c in snap.chunks
    ]
    return UserSnapshot("acme", "u1", tuple(chunks), snap.profile, snap.events)


def _with(chunk: PreferenceChunk, strength: float, polarity: Polarity) -> PreferenceChunk:
    return replace(chunk, strength=strength, polarity=polarity)


def test_thin_siblings_fold_into_their_parent_and_strong_ones_stay() -> None:
    snap = _siblings([0.1, 0.2, 0.9])
    after = apply_delta(snap, consolidation(snap, P))
    codes = {k: c for (f, k), c in code_chunks(after).items() if f == CODE_FACET}
    assert set(codes) == {"collab/3", "collab/3/2"}
    parent = codes["collab/3"]
    assert parent.evidence_count == 2 and set(parent.aliases) == {"collab/3/0", "collab/3/1"}
    assert parent.strength == pytest.approx(1 - 0.9 * 0.8, abs=1e-3)  # decayed a hair
    assert parent.text.endswith("and similar") and parent.polarity is Polarity.LIKE
    # later evidence about a folded sibling lands on the parent, not on a new chunk
    more = rating(9, "i0", 5.0, 10.0)
    again = apply_delta(after, absorb_stream(after, [more], {"i0": coded_item(0, (3, 0))}, P,
                                             fake_embed, None, [9]).delta)  # fmt: skip
    codes = {k: c for (f, k), c in code_chunks(again).items() if f == CODE_FACET}
    assert set(codes) == {"collab/3", "collab/3/2"} and codes["collab/3"].evidence_count == 3


def test_one_thin_sibling_waits_unless_its_parent_exists() -> None:
    snap = _siblings([0.1, 0.9])
    assert not [c for c in consolidation(snap, P).upserts if c.facet == CODE_FACET]
    two = _siblings([0.1, 0.1, 0.9])
    once = apply_delta(two, consolidation(two, P))
    # a new thin sibling joins the parent that is now held
    late = coded_item(7, (3, 7))
    grown = apply_delta(once, absorb_stream(once, [rating(7, "i7", 5.0, 9.0)], {"i7": late}, P,
                                            fake_embed, None, [7]).delta)  # fmt: skip
    thin = code_chunks(grown)[(CODE_FACET, "collab/3/7")]
    grown = replace(grown, chunks=tuple(
        _with(c, 0.1, c.polarity) if c is thin else c for c in grown.chunks
    ))  # fmt: skip
    folded = apply_delta(grown, consolidation(grown, P))
    assert (CODE_FACET, "collab/3/7") not in code_chunks(folded)
    assert code_chunks(folded)[(CODE_FACET, "collab/3")].evidence_count == 3


def test_siblings_of_opposite_polarity_do_not_fold_into_a_parent_that_disagrees() -> None:
    snap = _siblings([0.1, 0.1], Polarity.DISLIKE)
    folded = apply_delta(snap, consolidation(snap, P))
    parent = code_chunks(folded)[(CODE_FACET, "collab/3")]
    assert parent.polarity is Polarity.DISLIKE and parent.text.startswith("dislikes")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.floats(0.01, 1.0)),
                min_size=1, max_size=12, unique_by=lambda t: (t[0], t[1])))  # fmt: skip
def test_folding_keeps_every_piece_of_evidence_and_leaves_no_dangling_row(
    paths: list[tuple[int, int, float]],
) -> None:
    catalogue = {f"i{n}": coded_item(n, (a, b)) for n, (a, b, _) in enumerate(paths)}
    events = [rating(n, f"i{n}", 5.0, float(n)) for n in range(len(paths))]
    snap = apply_delta(EMPTY, absorb_stream(EMPTY, events, catalogue, P, fake_embed).delta)
    strength = {code_key("collab", (a, b)): s for a, b, s in paths}
    snap = UserSnapshot("acme", "u1", chunks=tuple(
        _with(c, strength[c.key], c.polarity) if c.facet == CODE_FACET else c for c in snap.chunks
    ), profile=snap.profile, events=snap.events)  # fmt: skip
    delta = consolidation(snap, P)
    assert not {c.chunk_id for c in delta.upserts} & set(delta.deletes)
    after = apply_delta(snap, delta)
    for facet in (CODE_FACET, ENGAGEMENT_FACET):

        def total(s: UserSnapshot, facet: str = facet) -> int:
            return sum(c.evidence_count for c in s.chunks if c.facet == facet and path_of(c))

        assert total(after) == total(snap)
    keys = [(c.facet, k) for c in after.chunks for k in (c.key, *c.aliases)]
    assert len(keys) == len(set(keys))  # every topic lands on exactly one chunk


class Buckets:
    """A codebook with one facet whose prefixes hold known items (no model)."""

    def __init__(self, buckets: dict[tuple[int, ...], list[str]]) -> None:
        self.buckets = buckets

    def facet_dims(self, tenant: str) -> dict[str, int]:
        return {"collab": 4}

    def members(self, tenant: str, facet: str, prefix: tuple[int, ...], n: int) -> list[str]:
        return self.buckets.get(prefix, [])[:n]


def test_path_candidates_read_the_strongest_liked_paths_buckets_in_order() -> None:
    import numpy as np

    from memory_store.candidates import path_candidates

    snap = _siblings([0.1, 0.2, 0.9])  # collab/3/0, 3/1, 3/2 (and their engagement chunks)
    chunks = list(snap.chunks)
    strengths = np.array([c.strength for c in chunks])
    source = Buckets({(3, 2): ["a", "b", "c"], (3, 1): ["c", "d"], (3, 0): ["e"]})
    got = path_candidates(source, "acme", chunks, strengths, 4, {"b"})
    assert got == ["a", "c", "d", "e"]  # 3/2 first (0.9), then 3/1, then 3/0; seen b left out
    assert path_candidates(source, "acme", chunks, strengths, 2, set()) == ["a", "b"]
    disliked = [_with(c, c.strength, Polarity.DISLIKE) if c.facet == CODE_FACET else c
                for c in chunks]  # fmt: skip
    only_engaged = path_candidates(source, "acme", disliked, strengths, 9, set())
    assert set(only_engaged) == {"a", "b", "c", "d", "e"}  # engagement chunks still like them
    assert path_candidates(source, "acme", chunks, strengths, 9, set(), ["content"]) == []


def test_the_narrative_names_liked_clusters_by_their_titles() -> None:
    from memory_store.operations import template_narrative

    snap = _siblings([0.6])
    liked = [c for c in snap.chunks if c.facet == CODE_FACET]
    assert template_narrative(liked) == "Likes titles like title (3, 0)."
    genre = [c for c in snap.chunks if c.facet == "genre"]
    assert template_narrative([*genre, *liked]) == ("Enjoys Drama, likes titles like title (3, 0).")
