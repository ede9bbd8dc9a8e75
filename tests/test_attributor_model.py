"""The Attributor model: distributions over the source, KL loss, learning, Hub round trip, use in generation."""

from __future__ import annotations

import textwrap

import pytest
import torch
from student_utils import TINY_MARIAN, run_fresh_offline, tiny_batch, tiny_student
from transformers import AutoModel

from agkd.modeling import AgkdAttributorConfig, AgkdAttributorModel
from agkd.modeling.attribution_injection import attribution_kl, attribution_rows_to_distributions


def tiny_attributor(seed: int = 0, **overrides) -> AgkdAttributorModel:
    torch.manual_seed(seed)
    config = AgkdAttributorConfig(**{**TINY_MARIAN, "scoring_heads": 4, "head_gate_dim": 8, **overrides})
    return AgkdAttributorModel(config).eval()


def test_rows_are_distributions_over_real_source_tokens():
    model = tiny_attributor()
    batch = tiny_batch()
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    torch.testing.assert_close(out.attribution.sum(-1), torch.ones(3, 5))
    assert out.attribution[~batch["attention_mask"].bool()[:, None, :].expand_as(out.attribution)].max() == 0
    torch.testing.assert_close(out.head_weights.sum(-1), torch.ones(3, 5))


def test_teacher_rows_are_made_distributions():
    mask = torch.tensor([[1, 1, 1, 0]])
    rows = torch.tensor([[[2.0, 1.0, 1.0, 9.0], [-1.0, 1.0, 0.0, 5.0], [0.0, 0.0, 0.0, 3.0]]])
    expected = torch.tensor([[[0.5, 0.25, 0.25, 0.0], [0.0, 2 / 3, 1 / 3, 0.0], [1 / 3, 1 / 3, 1 / 3, 0.0]]])
    torch.testing.assert_close(attribution_rows_to_distributions(rows, mask), expected)


def test_kl_is_zero_iff_prediction_equals_target():
    mask = torch.tensor([[1, 1, 1, 0]])
    target = attribution_rows_to_distributions(torch.rand(1, 3, 4), mask)
    log_probs = target.log().masked_fill(~mask[:, None, :].bool(), float("-inf"))
    assert attribution_kl(target, log_probs, mask, None).abs() < 1e-6
    other = torch.full_like(target, 1 / 3).log().masked_fill(~mask[:, None, :].bool(), float("-inf"))
    assert attribution_kl(target, other, mask, None) > 1e-3
    # Masked rows do not count.
    row_mask = torch.tensor([[1, 0, 0]])
    mixed = log_probs.clone()
    mixed[0, 1:] = other[0, 1:]
    assert attribution_kl(target, mixed, mask, row_mask).abs() < 1e-6


def test_a_tiny_attributor_overfits_a_handful_of_maps():
    model = tiny_attributor().train()
    batch = tiny_batch(batch_size=4, seed=3)
    sharp = torch.zeros_like(batch["attribution_map"])
    sharp.scatter_(-1, torch.randint(0, 4, (4, 5, 1), generator=torch.Generator().manual_seed(0)), 1.0)
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        loss = model(**inputs, attribution_map=sharp).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first, (first, loss.item())


def test_bad_config_and_shapes_raise():
    with pytest.raises(ValueError, match="scoring_heads"):
        AgkdAttributorConfig(**{**TINY_MARIAN, "scoring_heads": 3})
    model = tiny_attributor()
    batch = tiny_batch()
    with pytest.raises(ValueError, match="attribution_map has shape"):
        model(input_ids=batch["input_ids"], labels=batch["labels"], attribution_map=batch["attribution_map"][:, :2])
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(input_ids=batch["input_ids"])


@pytest.mark.parametrize("num_beams", [1, 3])
def test_student_generates_with_attributor_rows(num_beams):
    """With an Attributor as map source, each step reads the row predicted from the prefix so far."""
    student = tiny_student(injection_operator="replace")
    attributor = tiny_attributor(seed=1)
    batch = tiny_batch()
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    common = dict(max_new_tokens=6, num_beams=num_beams, do_sample=False)
    with torch.no_grad():
        cached = student.generate(**inputs, attributor=attributor, **common)
        uncached = student.generate(**inputs, attributor=attributor, use_cache=False, **common)
        plain = student.generate(**inputs, **common, output_scores=True, return_dict_in_generate=True)
        with_rows = student.generate(
            **inputs, attributor=attributor, **common, output_scores=True, return_dict_in_generate=True
        )
    torch.testing.assert_close(cached, uncached, rtol=0, atol=0)
    assert (plain.scores[0] - with_rows.scores[0]).abs().max() > 1e-6
    if num_beams == 1:
        # Causality: the rows predicted step by step equal the rows predicted on the finished sequence.
        with torch.no_grad():
            rows = attributor(**inputs, decoder_input_ids=cached[:, :-1]).attribution
            fixed = student.generate(**inputs, attribution_map=rows, **common)
        torch.testing.assert_close(cached, fixed, rtol=0, atol=0)


def test_attributor_and_map_are_exclusive():
    student = tiny_student(injection_operator="add")
    batch = tiny_batch()
    with pytest.raises(ValueError, match="either attribution_map or attributor"):
        student.generate(
            input_ids=batch["input_ids"], attribution_map=batch["attribution_map"], attributor=tiny_attributor()
        )


def test_trust_remote_code_in_a_fresh_process(tmp_path):
    model_dir = tmp_path / "attributor"
    model = tiny_attributor()
    model.save_pretrained(model_dir)
    assert AutoModel.from_pretrained(model_dir).config.scoring_heads == 4
    batch = tiny_batch()
    torch.save(batch, tmp_path / "batch.pt")
    with torch.no_grad():
        expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    torch.save(expected.attribution, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True).eval()
        assert "modeling" not in sys.modules and "agkd" not in sys.modules, "the repo package was imported"
        assert type(model).__name__ == "AgkdAttributorModel"
        assert type(model).__module__.startswith("transformers_modules")
        b = torch.load({str(tmp_path / "batch.pt")!r})
        with torch.no_grad():
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        torch.testing.assert_close(out.attribution, torch.load({str(tmp_path / "expected.pt")!r}))
        print("OK")
        """
    )
    assert "OK" in run_fresh_offline(script, tmp_path)
