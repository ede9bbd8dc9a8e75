"""Operator `supervise`: the student's cross-attention is trained toward the map's rows, and no map is used at test
time (leak-free by construction)."""

import torch

from agkd.modeling.attribution_injection import attribution_rows_to_distributions
from tests.student_utils import tiny_batch, tiny_student


def with_map(batch: dict, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch["labels"].shape[0], batch["labels"].shape[1], batch["input_ids"].shape[1])
    return {**batch, "attribution_map": torch.rand(shape, generator=generator)}


def test_training_loss_adds_the_weighted_kl_to_the_map_rows():
    batch = with_map(tiny_batch())
    student = tiny_student(injection_operator="supervise", supervision_weight=0.5).train()
    plain = tiny_student(injection_operator="none").train()
    torch.manual_seed(0)
    out = student(**batch)
    torch.manual_seed(0)
    reference = plain(**{k: v for k, v in batch.items() if k != "attribution_map"})
    assert out.supervision_loss is not None and out.supervision_loss > 0
    torch.testing.assert_close(out.loss, reference.loss + 0.5 * out.supervision_loss)
    torch.testing.assert_close(out.logits, reference.logits)  # nothing is injected into the logits
    assert out.cross_attentions is None  # not asked for


def test_the_term_is_the_kl_of_the_heads_mean_attention_to_the_row_distributions():
    batch = with_map(tiny_batch(batch_size=2))
    student = tiny_student(injection_operator="supervise", injection_layers=[0], injection_heads=[0, 1]).train()
    out = student(**batch, output_attentions=True)
    attention = out.cross_attentions[0][:, [0, 1]].mean(1)  # the selected heads' mean [B, T, S]
    target = attribution_rows_to_distributions(batch["attribution_map"], batch["attention_mask"])
    valid = batch["attention_mask"][:, None, :].bool() & (batch["labels"] != -100)[:, :, None]
    kl = torch.where(valid, torch.xlogy(target, target) - target * attention.clamp_min(1e-12).log(), 0.0).sum(-1)
    rows = (batch["labels"] != -100).sum()
    torch.testing.assert_close(out.supervision_loss, kl.sum() / rows)


def test_no_map_at_test_time_the_map_changes_nothing_in_eval_mode():
    batch = tiny_batch()
    student = tiny_student(injection_operator="supervise").eval()
    with torch.no_grad():
        without = student(**batch)
        with_ = student(**with_map(batch))
    torch.testing.assert_close(with_.logits, without.logits)
    assert getattr(with_, "supervision_loss", None) is None
    generated = student.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_length=6)
    assert generated.shape[0] == batch["input_ids"].shape[0]


def train(student, batch: dict, steps: int = 5) -> list[float]:
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        loss = student(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_weight_zero_trains_exactly_the_no_map_student():
    batch = tiny_batch()
    supervised = tiny_student(injection_operator="supervise", supervision_weight=0.0).train()
    plain = tiny_student(injection_operator="none").train()
    assert train(supervised, with_map(batch)) == train(plain, batch)
    for (name, a), (_, b) in zip(supervised.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_supervision_pulls_the_attention_toward_the_map():
    batch = tiny_batch()
    student = tiny_student(injection_operator="supervise", supervision_weight=1.0).train()
    mapped = with_map(batch)
    first = float(student(**mapped).supervision_loss.detach())
    train(student, mapped, steps=20)
    assert float(student(**mapped).supervision_loss.detach()) < first
