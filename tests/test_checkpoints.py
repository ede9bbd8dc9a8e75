"""Checkpoints survive a run killed while writing one: the half-written folder is dropped, the one before loads."""

from __future__ import annotations

import logging

import pytest
import torch

from agkd.training import loop


def make_run(project_dir):
    accelerator = loop.make_accelerator(project_dir, cpu=True, total_limit=3)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = loop.TrainingState()
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(state)
    return accelerator, model, state


def test_a_half_written_checkpoint_is_dropped_and_the_previous_one_loads(tmp_path, caplog):
    accelerator, model, state = make_run(tmp_path)
    state.step = 10
    loop.save_checkpoint(accelerator)
    weights_at_10 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    state.step = 20
    loop.save_checkpoint(accelerator)
    first, second = loop.checkpoints(tmp_path)
    assert (first / loop.CHECKPOINT_COMPLETE).exists() and (second / loop.CHECKPOINT_COMPLETE).exists()

    # what a kill in the middle of the second save leaves: a truncated file and no marker
    (second / loop.CHECKPOINT_COMPLETE).unlink()
    (second / "custom_checkpoint_0.pkl").write_bytes(b"")

    resumed, resumed_model, resumed_state = make_run(tmp_path)
    with caplog.at_level(logging.WARNING, logger="agkd.training.loop"):
        loaded = loop.resume_from_latest(resumed)
    assert loaded == first and resumed_state.step == 10
    assert torch.equal(resumed_model.weight.detach(), weights_at_10)
    assert not second.exists() and "does not load" in caplog.text
    # the next save does not reuse the dropped folder's name
    loop.save_checkpoint(resumed)
    assert loop.checkpoints(tmp_path)[-1].name == "checkpoint_2"


def test_a_complete_checkpoint_that_fails_to_load_is_an_error_not_a_fallback(tmp_path):
    accelerator, _, _ = make_run(tmp_path)
    loop.save_checkpoint(accelerator)
    loop.save_checkpoint(accelerator)
    second = loop.checkpoints(tmp_path)[-1]
    (second / "custom_checkpoint_0.pkl").write_bytes(b"")
    resumed, _, _ = make_run(tmp_path)
    with pytest.raises(EOFError):
        loop.resume_from_latest(resumed)
    assert second.exists()


def test_no_loadable_checkpoint_stops_the_run(tmp_path):
    accelerator, _, _ = make_run(tmp_path)
    loop.save_checkpoint(accelerator)
    only = loop.checkpoints(tmp_path)[-1]
    (only / loop.CHECKPOINT_COMPLETE).unlink()
    (only / "custom_checkpoint_0.pkl").write_bytes(b"")
    resumed, _, _ = make_run(tmp_path)
    with pytest.raises(RuntimeError, match="no checkpoint .* loads"):
        loop.resume_from_latest(resumed)
