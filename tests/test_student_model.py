"""The attribution-injected student: operators, masks, layer/head selection, generation, Hub round trip, errors."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from student_utils import TINY_MARIAN, run_fresh_offline, tiny_batch, tiny_student
from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel

from agkd.modeling import AgkdStudentConfig, AgkdStudentForConditionalGeneration
from agkd.modeling.attribution_injection import MAP_NORMALIZATIONS, normalize_map

OPERATORS = ["add", "multiply", "average", "replace"]
REFERENCE_OPERATORS = {
    "add": lambda s, a: s + a,
    "multiply": lambda s, a: s * a,
    "average": lambda s, a: (s + a) / 2,
    "replace": lambda s, a: a + 0 * s,
}


def reference_cross_attention(layer, hidden, encoder_states, source_mask, rows, heads, operator):
    """Plain re-computation of one injected cross-attention: logits, combine on `heads`, re-mask, softmax."""
    attn = layer.encoder_attn
    bsz, tgt, _ = hidden.shape
    q = attn.q_proj(hidden).view(bsz, tgt, attn.num_heads, -1).transpose(1, 2)
    k = attn.k_proj(encoder_states).view(bsz, encoder_states.shape[1], attn.num_heads, -1).transpose(1, 2)
    logits = q @ k.transpose(2, 3) * attn.head_dim**-0.5
    out = logits.clone()
    for h in heads:
        out[:, h] = REFERENCE_OPERATORS[operator](logits[:, h], rows)
    out = out.masked_fill(~source_mask[:, None, None, :].bool(), float("-inf"))
    return out.softmax(-1)


@settings(max_examples=25, deadline=None)
@given(
    operator=st.sampled_from(OPERATORS),
    heads=st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True)),
    normalization=st.sampled_from(sorted(MAP_NORMALIZATIONS)),
    source_length=st.integers(3, 9),
    target_length=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_each_operator_matches_plain_computation(operator, heads, normalization, source_length, target_length, seed):
    model = tiny_student(injection_operator=operator, injection_heads=heads, map_normalization=normalization)
    batch = tiny_batch(source_length=source_length, target_length=target_length, seed=seed)
    captured = {}
    layer = model.model.decoder.layers[0]
    layer.encoder_attn.register_forward_hook(
        lambda module, args, kwargs, output: captured.update(hidden=args[0], weights=output[1]), with_kwargs=True
    )
    with torch.no_grad():
        out = model(**batch)
        rows = normalize_map(batch["attribution_map"], batch["attention_mask"], normalization)
        expected = reference_cross_attention(
            layer,
            captured["hidden"],
            out.encoder_last_hidden_state,
            batch["attention_mask"],
            rows,
            heads if heads is not None else range(4),
            operator,
        )
    torch.testing.assert_close(captured["weights"], expected, atol=1e-5, rtol=1e-4)
    padded = ~batch["attention_mask"].bool()[:, None, None, :].expand_as(expected)
    assert captured["weights"][padded].abs().max() == 0


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_operator_none_and_no_map_equal_marian(attn_implementation):
    student = tiny_student(injection_operator="add")
    marian = MarianMTModel(MarianConfig(**TINY_MARIAN)).eval()
    assert marian.load_state_dict(student.state_dict(), strict=True)
    student.set_attn_implementation(attn_implementation)
    marian.set_attn_implementation(attn_implementation)
    batch = tiny_batch()
    attribution_map = batch.pop("attribution_map")
    with torch.no_grad():
        expected = marian(**batch).logits
        torch.testing.assert_close(student(**batch).logits, expected, rtol=0, atol=0)
        student.config.injection_operator = "none"
        torch.testing.assert_close(student(**batch, attribution_map=attribution_map).logits, expected, rtol=0, atol=0)
        student.config.injection_operator = "add"
        assert not torch.allclose(student(**batch, attribution_map=attribution_map).logits, expected)


def test_layer_and_head_selection():
    model = tiny_student(injection_operator="replace", injection_layers=[1], injection_heads=[2])
    plain = tiny_student(injection_operator="none")
    batch = tiny_batch()
    model.set_attn_implementation("eager")
    plain.set_attn_implementation("eager")
    with torch.no_grad():
        injected = model(**batch, output_attentions=True)
        reference = plain(**batch, output_attentions=True)
    torch.testing.assert_close(injected.cross_attentions[0], reference.cross_attentions[0])
    layer1, layer1_ref = injected.cross_attentions[1], reference.cross_attentions[1]
    assert not torch.allclose(layer1[:, 2], layer1_ref[:, 2])
    for head in (0, 1, 3):
        assert not torch.allclose(layer1[:, head], layer1[:, 2])
    # `replace` ignores the logits of the injected head: its weights are softmax of the raw map over real tokens.
    expected = batch["attribution_map"].masked_fill(~batch["attention_mask"][:, None].bool(), float("-inf")).softmax(-1)
    torch.testing.assert_close(layer1[:, 2], expected)


def test_rows_beyond_the_map_and_masked_rows_are_not_injected():
    model = tiny_student(injection_operator="replace")
    model.set_attn_implementation("eager")
    batch = tiny_batch(target_length=5)
    short_map = batch.pop("attribution_map")[:, :3]
    row_mask = torch.ones(3, 3, dtype=torch.bool)
    row_mask[0, 1] = False
    captured = []
    model.model.decoder.layers[0].encoder_attn.register_forward_hook(lambda m, a, o: captured.append(o[1]))
    with torch.no_grad():
        model(**batch, attribution_map=short_map, attribution_map_mask=row_mask)
        model.config.injection_operator = "none"
        model(**batch, output_attentions=True)
    injected, plain = captured
    expected_replace = short_map.masked_fill(~batch["attention_mask"][:, None].bool(), float("-inf")).softmax(-1)
    torch.testing.assert_close(injected[:, :, 3:], plain[:, :, 3:])  # beyond the map: no injection
    torch.testing.assert_close(injected[0, :, 1], plain[0, :, 1])  # masked row: no injection
    torch.testing.assert_close(injected[0, :, 0], expected_replace[0, 0].expand(4, -1))


@pytest.mark.parametrize("operator", OPERATORS)
def test_cached_uncached_and_teacher_forced_agree(operator):
    model = tiny_student(injection_operator=operator, map_normalization="row_softmax")
    batch = tiny_batch(target_length=4)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "attribution_map")}
    common = dict(max_new_tokens=7, do_sample=False, output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        cached = model.generate(**inputs, num_beams=1, use_cache=True, **common)
        uncached = model.generate(**inputs, num_beams=1, use_cache=False, **common)
        torch.testing.assert_close(cached.sequences, uncached.sequences, rtol=0, atol=0)
        for step_cached, step_uncached in zip(cached.scores, uncached.scores, strict=True):
            torch.testing.assert_close(step_cached, step_uncached, atol=1e-5, rtol=1e-5)
        # Teacher-forcing the generated prefix gives the same next-token logits in one pass (steps past the map too).
        forced = model(**inputs, decoder_input_ids=cached.sequences[:, :-1]).logits
        torch.testing.assert_close(forced, torch.stack(cached.scores, dim=1), atol=1e-4, rtol=1e-4)
        beam_cached = model.generate(**inputs, num_beams=3, use_cache=True, max_new_tokens=7)
        beam_uncached = model.generate(**inputs, num_beams=3, use_cache=False, max_new_tokens=7)
    torch.testing.assert_close(beam_cached, beam_uncached, rtol=0, atol=0)


def test_map_changes_generation_scores():
    model = tiny_student(injection_operator="replace")
    batch = tiny_batch(batch_size=1, target_length=6)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    common = dict(max_new_tokens=4, num_beams=2, output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        plain = model.generate(**inputs, **common)
        onehot = torch.zeros_like(batch["attribution_map"])
        onehot[0, :, 0] = 50.0
        injected = model.generate(**inputs, attribution_map=onehot, **common)
    assert not torch.allclose(plain.scores[0], injected.scores[0])


def test_training_step_backpropagates_through_the_injection():
    model = tiny_student(injection_operator="multiply").train()
    batch = tiny_batch()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.decoder.layers[0].encoder_attn.q_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(attribution_map=b["attribution_map"][0]), "shape"),
        (lambda b: b.update(attribution_map=b["attribution_map"][:2]), "batch size"),
        (lambda b: b.update(attribution_map=b["attribution_map"][:, :, :4]), "source positions"),
        (lambda b: b["attribution_map"].__setitem__((0, 1, 2), float("nan")), "NaN"),
        (lambda b: b["attribution_map"].__setitem__((1, 0, 0), float("inf")), "NaN or inf"),
        (lambda b: b.update(attribution_map=b["attribution_map"].long()), "floating point"),
        (lambda b: b.update(attribution_map_mask=torch.ones(3, 2, dtype=torch.bool)), "attribution_map_mask"),
    ],
)
def test_bad_maps_raise_before_any_compute(change, message):
    model = tiny_student(injection_operator="add")
    batch = tiny_batch()
    change(batch)
    calls = []
    model.model.encoder.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=message):
        model(**batch)
    generate_inputs = {k: v for k, v in batch.items() if k != "labels"}
    with pytest.raises(ValueError, match=message):
        model.generate(**generate_inputs, max_new_tokens=3)
    assert calls == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"injection_operator": "addition"}, "unknown injection_operator 'addition'"),
        ({"map_normalization": "minmax"}, "unknown map_normalization 'minmax'"),
        ({"injection_layers": [2]}, "injection_layers"),
        ({"injection_layers": []}, "injection_layers"),
        ({"injection_heads": [4]}, "injection_heads"),
        ({"injection_heads": [1, 1]}, "injection_heads"),
    ],
)
def test_bad_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        AgkdStudentConfig(**{**TINY_MARIAN, **overrides})


def test_operator_edited_after_loading_is_checked():
    model = tiny_student()
    model.config.injection_operator = "mult"
    with pytest.raises(ValueError, match="unknown injection_operator 'mult'"):
        model(**tiny_batch())


def test_initialise_from_a_marian_checkpoint(tmp_path):
    marian = MarianMTModel(MarianConfig(**TINY_MARIAN)).eval()
    marian.save_pretrained(tmp_path)
    student = AgkdStudentForConditionalGeneration.from_pretrained(tmp_path, injection_operator="add").eval()
    assert student.config.injection_operator == "add"
    batch = tiny_batch()
    batch.pop("attribution_map")
    with torch.no_grad():
        torch.testing.assert_close(student(**batch).logits, marian(**batch).logits, rtol=0, atol=0)


def test_save_and_load_with_auto_classes_in_process(tmp_path):
    model = tiny_student(injection_operator="average", injection_layers=[0], map_normalization="row_sum")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_agkd_student.AgkdStudentConfig",
        "AutoModelForSeq2SeqLM": "modeling_agkd_student.AgkdStudentForConditionalGeneration",
    }
    for name in ("modeling_agkd_student.py", "configuration_agkd_student.py", "attribution_injection.py"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "model.safetensors").exists()
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert reloaded.config.injection_layers == [0]
    batch = tiny_batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_trust_remote_code_in_a_fresh_process(tmp_path):
    """A user's process that never imported this repository loads the student from the folder alone."""
    model_dir = tmp_path / "student"
    model = tiny_student(injection_operator="add", injection_heads=[0, 3])
    model.save_pretrained(model_dir)
    batch = tiny_batch()
    torch.save(batch, tmp_path / "batch.pt")
    with torch.no_grad():
        torch.save(model(**batch).logits, tmp_path / "expected.pt")
        torch.save(
            model.generate(**{k: v for k, v in batch.items() if k != "labels"}, num_beams=2, max_new_tokens=5),
            tmp_path / "expected_gen.pt",
        )
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForSeq2SeqLM
        model = AutoModelForSeq2SeqLM.from_pretrained({str(model_dir)!r}, trust_remote_code=True).eval()
        assert "modeling" not in sys.modules and "agkd" not in sys.modules, "the repo package was imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        batch = torch.load({str(tmp_path / "batch.pt")!r})
        with torch.no_grad():
            torch.testing.assert_close(model(**batch).logits, torch.load({str(tmp_path / "expected.pt")!r}))
            inputs = {{k: v for k, v in batch.items() if k != "labels"}}
            generated = model.generate(**inputs, num_beams=2, max_new_tokens=5)
        assert torch.equal(generated, torch.load({str(tmp_path / "expected_gen.pt")!r}))
        print("OK", type(model).__name__)
        """
    )
    # The editable install's import hook is in site-packages: the script also checks that `modeling` was never imported.
    assert "OK AgkdStudentForConditionalGeneration" in run_fresh_offline(script, tmp_path)
