"""Hub model cards of every model the release trains: teachers, students, Attributors.

`write_model_card` builds the YAML metadata (with `model-index` results) offline from `huggingface_hub`'s
`ModelCardData`/`EvalResult`; the three writers below give each kind of model its body. `agkd evaluate` rewrites a
student's card with its measured results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets_scripts.attribution_configs import BASELINE
from datasets_scripts.teachers import MBART_BASE_HUB_ID, MBART_LANG_CODES, teacher_spec
from training.loop import format_seconds
from training.scoring import FIDELITY_METRICS


@dataclass
class MetricResult:
    """One model-index entry: a metric measured on one split of one dataset config."""

    dataset_id: str
    dataset_name: str
    config: str
    split: str
    metric: str  # "bleu" | "chrf" | ...
    value: float
    task_name: str = "Translation"


def write_model_card(
    folder: str | Path,
    *,
    model_name: str,
    body: str,
    languages: Sequence[str],
    results: Sequence[MetricResult] = (),
    license: str = "apache-2.0",
    tags: Sequence[str] = ("translation",),
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    pipeline_tag: str = "translation",
    library_name: str = "transformers",
) -> Path:
    """Write `<folder>/README.md`: YAML metadata with `model-index` (from `ModelCardData`/`EvalResult`, offline)
    followed by the markdown `body`."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    metric_names = {"bleu": "BLEU", "chrf": "chrF"}
    eval_results = [
        EvalResult(
            task_type="translation",
            task_name=f"{r.task_name} {r.config}",
            dataset_type=r.dataset_id,
            dataset_name=r.dataset_name,
            dataset_config=r.config,
            dataset_split=r.split,
            metric_type=r.metric,
            metric_name=metric_names.get(r.metric, r.metric),
            metric_value=round(float(r.value), 2),
        )
        for r in results
    ]
    data = ModelCardData(
        language=list(languages),
        license=license,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=list(tags),
        datasets=list(datasets) or None,
        base_model=base_model,
        metrics=sorted({r.metric for r in results}) or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")
    path = Path(folder) / "README.md"
    card.save(path)
    return path


def write_teacher_card(folder: Path, args, name: str, pairs: list[str], summary: dict) -> None:
    """A teacher's model card: what it is, how to use it, its training and its BLEU/chrF in `model-index`."""
    corpus_name = Path(args.corpus).name if Path(args.corpus).exists() else args.corpus
    results = []
    rows = []
    for r in summary["results"].values():
        for metric in ("bleu", "chrf"):
            results.append(MetricResult(corpus_name, corpus_name, r["pair"], r["split"], metric, r[metric]))
        rows.append(
            f"| {r['pair']} | {r['split']} | {r['examples']} | {r['bleu']:.2f} | {r['chrf']:.2f} | "
            f"{r['copy_source_bleu']:.2f} | {r['copy_source_chrf']:.2f} |"
        )
    signature = next(iter(summary["results"].values()), {})
    languages = sorted({p.split("-")[0] for p in pairs} | {"en"})
    family = args.family
    if family == "marian":
        pair = pairs[0]
        usage = f'''```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForSeq2SeqLM.from_pretrained("{name}")
batch = tokenizer(["<a {pair.split("-")[0]} sentence>"], return_tensors="pt")
print(tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True))
```'''
        hub_id = teacher_spec("marian", pair).hub_id
        what = f"A small MarianMT model ({pair}) trained from scratch; the public counterpart is `{hub_id}`."
        base_model = None
    else:
        codes = ", ".join("`" + MBART_LANG_CODES[p.split("-")[0]] + "`" for p in pairs)
        usage = f'''```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}", src_lang="fr_XX", tgt_lang="en_XX")
model = AutoModelForSeq2SeqLM.from_pretrained("{name}")
batch = tokenizer(["<a French sentence>"], return_tensors="pt")
out = model.generate(**batch, forced_bos_token_id=tokenizer.convert_tokens_to_ids("en_XX"))
print(tokenizer.batch_decode(out, skip_special_tokens=True))
```
Language codes: {codes} -> `en_XX`.'''
        what = (
            f"A small multilingual mBART-50-style model ({', '.join(pairs)} into English) trained from scratch with "
            f"mBART-50 language codes; the public counterpart is `{teacher_spec('mbart', pairs[0]).hub_id}` "
            f"(fine-tuned from `{MBART_BASE_HUB_ID}`)."
        )
        base_model = None
    hp = summary["hyperparameters"]
    tps = summary["train_tokens_per_second"]
    body = f"""# {name}

{what} It is a *teacher* of AGKD: its attribution maps are injected into the cross-attention of student models to
score attribution methods by how much they teach. It is small on purpose (preset `{args.preset}`); do not use it as a
general-purpose translator.

## How to use
{usage}

## Training
- Data: `{args.corpus}` (configs {", ".join(pairs)}), train split{f" (origins: {args.train_origins})" if args.train_origins else ""}: {", ".join(f"{p} {n}" for p, n in summary["train_examples"].items())} pairs.
- Tokenizer: a unigram sentencepiece model trained on that data ({hp["vocab_size"]} pieces asked).
- Model: {hp["layers"]}+{hp["layers"]} layers, d_model {hp["d_model"]}, {hp["heads"]} heads, FFN {hp["ffn_dim"]}, {summary["parameters"] / 1e6:.1f}M parameters.
- Optimisation: AdamW, peak learning rate {hp["learning_rate"]}, {hp["warmup_steps"]} warm-up steps then `{hp["lr_scheduler"]}` schedule,
  batch {hp["batch_size"]} x {summary["num_processes"]} process(es), label smoothing {hp["label_smoothing"]}, at most {hp["max_steps"]} steps,
  early stopping on validation loss (patience {hp["patience"]} evaluations every {hp["eval_steps"]} steps), seed {args.seed}.
- Ran {summary["steps"]} steps{" (stopped by its time budget, `--max_minutes`, before the end of the schedule)" if summary["stopped_on_time_budget"] else ""} (best validation loss {summary["best_validation_loss"]:.4f} at step {summary["best_step"]});
  the last (or only) run took {format_seconds(summary["train_seconds_this_run"])} on {summary["device"]}{f", {tps:.0f} tokens/s" if tps else ""}.

## Evaluation
sacrebleu corpus BLEU and chrF on detokenised output against the raw references, beam size {hp["num_beams"]}.
The copy-the-source baseline scores the untranslated source sentences as hypotheses.

| pair | split | sentences | BLEU | chrF | copy-source BLEU | copy-source chrF |
|---|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Signatures: BLEU `{signature.get("bleu_signature", "")}`, chrF `{signature.get("chrf_signature", "")}`.
All figures were measured by `training/train_teacher.py` at the end of training; `all_results.json` has the details.
"""
    write_model_card(
        folder,
        model_name=name,
        body=body,
        languages=languages,
        results=results,
        tags=("translation", family, "agkd", "teacher"),
        datasets=[corpus_name],
        base_model=base_model,
    )


def write_student_card(folder: Path, run: dict, results: list | None = None) -> None:
    """The student's model card; `training/evaluate.py` rewrites it with BLEU/chrF results in `model-index`."""
    source, target = run["pair"].split("-")
    map_source = "no map (baseline)" if run["method"] == BASELINE else f"`{run['method']}` maps of the teacher"
    if run["attribution_config"] is None:
        map_source = "no map: the shared warm start that the cells of the `warm` design fine-tune from"
    design = (
        "fine-tuned from the no-map warm start `" + Path(run["init_from"]).name + "` (design `warm`, not the paper's)"
        if run.get("student_init") == "warm"
        else "trained from scratch (design `scratch`, the paper's)"
    )
    body = f"""
# {run['name']}

An AGKD student: a Marian-style translation model ({source} -> {target}) {design}, with {map_source}
injected into its decoder cross-attention (operator `{run['operator']}`, normalisation `{run['map_normalization']}`).
Its gain over the no-map baseline (teacher-forced token NLL of the reference, BLEU, chrF) scores how much the
attribution method teaches.

- Teacher: `{run['teacher']}` (its tokenizer is used); data from `{run['attributions']}`, config `{run['attribution_config'] or run['pair']}`.
- Targets: `{run['target_kind']}` ({'gold references, the paper protocol' if run['target_kind'] == 'reference' else "the teacher's own translations: forward simulation"}).
- Seed {run['seed']}, preset `{run['preset']}`, {run['train_examples']} training pairs, {run['steps']} steps
  (best validation loss {run['best_validation_loss']:.4f} at step {run['best_step']}), {run['parameters'] / 1e6:.2f}M parameters.

## How to use

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

model = AutoModelForSeq2SeqLM.from_pretrained("<this repo>", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("<this repo>")
inputs = tokenizer(["<a {source} sentence>"], return_tensors="pt")
# attribution_map: [batch, target_len, source_len], row t = target token t, column s = source token s
out = model.generate(**inputs, attribution_map=attribution_map)  # or attributor=<AgkdAttributorModel>, or no map
```

Remote code: pin `revision=` to a commit you have read. Training details are in `agkd_run.json`.
"""
    write_model_card(
        folder,
        model_name=run["name"],
        body=body,
        languages=[source, target],
        results=results or [],
        tags=("translation", "marian", "attribution", "agkd", "custom_code"),
        datasets=[run["attributions"]] if not Path(run["attributions"]).exists() else (),
    )


def write_attributor_card(folder: Path, run: dict) -> None:
    """An Attributor's model card: what it predicts, its held-out fidelity, how to use it."""
    source, target = run["pair"].split("-")
    fid = run["fidelity"]
    table = "\n".join(f"| {k} | {fid[k]:.4f} |" for k in FIDELITY_METRICS if k in fid)
    body = f"""
# {run['name']}

An AGKD Attributor: given a {source}-{target} source and a target prefix in the teacher's tokenisation, it predicts
the teacher's `{run['method']}` attribution row of each target token as a distribution over the source tokens.
Trained with KL(teacher row || predicted row) on `{run['attributions']}` config `{run['attribution_config']}`
({run['examples']}), teacher `{run['teacher']}`, seed {run['seed']}, {run['steps']} steps.

## Fidelity on held-out pairs (`{fid['split']}`, {fid['rows']} target rows)

| metric | value |
|---|---|
{table}

KL is in nats (lower is better); top-3 overlap, Kendall tau and Spearman compare the predicted and teacher rows.

## How to use

```python
from transformers import AutoModel, AutoModelForSeq2SeqLM

attributor = AutoModel.from_pretrained("<this repo>", trust_remote_code=True)
rows = attributor(input_ids=..., attention_mask=..., labels=target_ids).attribution   # [batch, tgt_len, src_len]
student = AutoModelForSeq2SeqLM.from_pretrained("<a student repo>", trust_remote_code=True)
student.generate(input_ids=..., attention_mask=..., attributor=attributor)          # no teacher at test time
```

For pairs the teacher never explained it is a cheap map source, as faithful as the metrics above say, no more.
"""
    write_model_card(
        folder, model_name=run["name"], body=body, languages=[source, target], pipeline_tag=None,
        tags=("attribution", "agkd", "custom_code"),
    )
