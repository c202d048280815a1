"""SASRec: windows, shapes, a training step that lowers the loss, repeatable training."""

from __future__ import annotations

from dataclasses import replace

import torch

from streams.eval.sasrec import (
    SASRec,
    SASRecConfig,
    score_users,
    step,
    train_sasrec,
    training_windows,
)

CFG = SASRecConfig(dim=16, layers=1, heads=2, max_len=4, dropout=0.0, epochs=2, batch_size=4)


def test_windows_are_left_padded_and_shifted_by_one() -> None:
    inputs, targets = training_windows([[1, 2, 3], [5, 6, 7, 8, 9, 10, 11]], max_len=4)
    assert inputs.tolist() == [
        [0, 0, 1, 2],
        [7, 8, 9, 10],  # the newest window of the long sequence first
        [0, 0, 5, 6],
    ]
    # Targets are the next items, 0-based; -1 where nothing is predicted.
    assert targets.tolist() == [[-1, -1, 1, 2], [7, 8, 9, 10], [-1, -1, 5, 6]]


def test_forward_and_logits_shapes_and_padding_stay_finite() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=9, cfg=CFG)
    seq = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])
    hidden = model(seq)
    assert hidden.shape == (2, 4, 16)
    assert torch.isfinite(hidden).all()
    assert model.logits(hidden).shape == (2, 4, 9)


def test_one_step_lowers_the_loss_on_its_batch() -> None:
    torch.manual_seed(0)
    model = SASRec(n_items=12, cfg=CFG)
    inputs, targets = training_windows([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [2, 4, 6, 8]], 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before, n = step(model, optimizer, inputs, targets)
    after, _ = step(model, optimizer, inputs, targets)
    assert n == int((targets >= 0).sum()) > 0
    assert after < before


def test_training_is_repeatable_and_learns_a_fixed_pattern() -> None:
    pattern = [[1, 2, 3, 4, 5, 6, 7, 8]] * 12
    cfg = replace(CFG, epochs=15)
    model, losses = train_sasrec(pattern, 8, cfg)
    _, again = train_sasrec(pattern, 8, cfg)
    assert losses == again
    assert losses[-1] < losses[0]
    # The two training windows are [1, 2, 3] -> 4 and [4, 5, 6, 7] -> 8 (columns 3 and 7).
    scores = score_users(model, [[1, 2, 3], [4, 5, 6, 7]])
    assert scores.shape == (2, 8)
    assert scores[0].argmax() == 3 and scores[1].argmax() == 7
