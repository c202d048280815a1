"""The real MiniLM model from its PyPI package: offline, 384-d, normalised, meaningful."""

from __future__ import annotations

import math

import pytest

from memory_store.embedding import DIMENSION, MiniLMEmbedder


@pytest.fixture(scope="module")
def embed() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_normalised_and_384_dimensional(embed: MiniLMEmbedder) -> None:
    vectors = embed(["likes Comedy movies", "dislikes Horror movies"])
    assert len(vectors) == 2
    for v in vectors:
        assert len(v) == DIMENSION
        assert math.isclose(math.sqrt(dot(v, v)), 1.0, rel_tol=1e-4)


def test_similar_preferences_are_closer_than_unrelated_ones(embed: MiniLMEmbedder) -> None:
    comedy, funny, horror_docs = embed(["Comedy", "funny comedies", "documentaries about tax law"])
    assert dot(comedy, funny) > dot(comedy, horror_docs) + 0.2


def test_empty_input_loads_nothing() -> None:
    fresh = MiniLMEmbedder()
    assert fresh([]) == []
    assert fresh._model is None
