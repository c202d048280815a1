"""SASRec: windows, causality, memory tokens, early stopping, repeatable training, the cache."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from streams.eval.sasrec import MemoryBatch, SASRec, SASRecConfig
from streams.eval.sasrec_cache import trained_sasrec
from streams.eval.sasrec_train import score_sequences, train_sasrec, training_windows

CFG = SASRecConfig(dim=16, layers=1, heads=2, max_len=4, dropout=0.0, max_epochs=2,
                   batch_size=4, threads=1)  # fmt: skip


def _memory(rows: int, keys: list[list[int]] | None = None) -> MemoryBatch:
    k = torch.tensor(keys) if keys is not None else torch.zeros((rows, 2), dtype=torch.long)
    return MemoryBatch(k, 0.5 * (k > 0).float(), torch.zeros((rows, 3)))


def test_windows_are_left_padded_shifted_by_one_and_know_where_they_start() -> None:
    windows = training_windows([[1, 2, 3], [5, 6, 7, 8, 9, 10, 11]], max_len=4)
    assert windows.inputs.tolist() == [
        [0, 0, 1, 2],
        [7, 8, 9, 10],  # the newest window of the long sequence first
        [0, 0, 5, 6],
    ]
    # Targets are the next items, 0-based; -1 where nothing is predicted.
    assert windows.targets.tolist() == [[-1, -1, 1, 2], [7, 8, 9, 10], [-1, -1, 5, 6]]
    # (sequence, index of the window's first input item)
    assert windows.starts == ((0, 0), (1, 2), (1, 0))


def test_no_sequence_with_two_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to train"):
        training_windows([[1], []], 4)


def test_shapes_padding_and_causality() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=9, cfg=CFG).eval()
    seq = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])
    hidden = model(seq)
    assert hidden.shape == (2, 4, 16)
    assert torch.isfinite(hidden).all()
    assert model.logits(hidden).shape == (2, 4, 9)
    # A later item never changes an earlier position's state.
    changed = model(torch.tensor([[0, 1, 2, 7]]))
    assert torch.allclose(changed[0, :3], hidden[1, :3], atol=1e-6)
    assert not torch.allclose(changed[0, 3], hidden[1, 3])


def test_memory_tokens_reach_every_position_and_empty_slots_are_ignored() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=9, cfg=CFG, memory_keys=5, profile_dim=3).eval()
    seq = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])
    with pytest.raises(ValueError, match="MemoryBatch"):
        model(seq)
    empty = model(seq, _memory(2))
    held = model(seq, _memory(2, [[0, 0], [4, 2]]))
    assert torch.allclose(held[0], empty[0])  # row 0 has no belief either way
    assert not torch.allclose(held[1, 1], empty[1, 1])  # the first item already sees it
    assert held.shape == (2, 4, 16)


def _fixed_pattern() -> list[list[int]]:
    return [[1, 2, 3, 4, 5, 6, 7, 8]] * 12


def test_training_is_repeatable_learns_and_keeps_its_best_epoch() -> None:
    cfg = replace(CFG, max_epochs=30, patience=30)
    windows = training_windows(_fixed_pattern(), cfg.max_len)
    # A validation score that peaks at epoch 4: the model returned is that epoch's.
    curve = iter([0.1, 0.2, 0.3, 0.9] + [0.5] * 26)
    states: list[dict[str, torch.Tensor]] = []

    def validate(m: SASRec) -> float:
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(curve)

    torch.manual_seed(0)
    model = SASRec(8, cfg)
    log = train_sasrec(model, windows, validate)
    assert log.best_epoch == 4 and len(log.losses) == 30
    assert all(torch.equal(model.state_dict()[k], v) for k, v in states[3].items())
    assert log.losses[-1] < log.losses[0]

    torch.manual_seed(0)
    again = SASRec(8, cfg)
    assert train_sasrec(again, windows, lambda m: 1.0).losses == log.losses


def test_early_stopping_waits_patience_epochs_after_the_best() -> None:
    cfg = replace(CFG, max_epochs=50, patience=3)
    windows = training_windows(_fixed_pattern(), cfg.max_len)
    curve = iter([0.1, 0.5, 0.4, 0.5, 0.3] + [0.0] * 45)
    log = train_sasrec(SASRec(8, cfg), windows, lambda m: next(curve))
    assert log.best_epoch == 2 and len(log.losses) == 5


def test_a_trained_model_predicts_the_pattern() -> None:
    cfg = replace(CFG, max_epochs=40, patience=40)
    torch.manual_seed(0)
    model = SASRec(8, cfg)
    better = itertools.count()  # every epoch validates better: the last one is kept
    train_sasrec(model, training_windows(_fixed_pattern(), cfg.max_len), lambda m: next(better))
    # Windows [1, 2, 3] -> 4 and [4, 5, 6, 7] -> 8 are columns 3 and 7.
    scores = score_sequences(model, [[1, 2, 3], [4, 5, 6, 7]])
    assert scores.shape == (2, 8)
    assert scores[0].argmax() == 3 and scores[1].argmax() == 7


def test_the_cache_returns_the_same_model_and_only_for_the_same_data(tmp_path: Path) -> None:
    cfg = replace(CFG, max_epochs=3)
    windows = training_windows(_fixed_pattern(), cfg.max_len)
    calls: list[int] = []

    def validate(m: SASRec) -> float:
        calls.append(1)
        return float(len(calls))

    torch.manual_seed(0)
    first = SASRec(8, cfg)
    log, cached = trained_sasrec(first, windows, validate, [[1], [2]], tmp_path)
    assert not cached and len(calls) == 3
    second = SASRec(8, cfg)
    again, cached = trained_sasrec(second, windows, validate, [[1], [2]], tmp_path)
    assert cached and len(calls) == 3 and again == log
    assert all(torch.equal(second.state_dict()[k], v) for k, v in first.state_dict().items())
    other = training_windows([[1, 2, 3, 4, 5, 6, 7]] * 12, cfg.max_len)
    _, cached = trained_sasrec(SASRec(8, cfg), other, validate, [[1], [2]], tmp_path)
    assert not cached and len(calls) == 6
    assert len(list(tmp_path.glob("*.pt"))) == 2 and not list(tmp_path.glob("*.part"))
