"""Hub model cards of every model the release trains: teachers, students, Attributors.

`write_model_card` builds the YAML metadata (with `model-index` results) offline from `huggingface_hub`'s
`ModelCardData`/`EvalResult`; the three writers below give each kind of model its body. `agkd evaluate` rewrites a
student's card with its measured results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agkd.datasets_scripts.attribution.configs import BASELINE
from agkd.datasets_scripts.release_layout import protocol_order, public_ref
from agkd.datasets_scripts.teachers import MBART_BASE_HUB_ID, MBART_LANG_CODES, teacher_spec
from agkd.training.evaluation.scoring import FIDELITY_METRICS, METRICS, PRIMARY_METRIC
from agkd.training.loop import format_seconds


@dataclass
class MetricResult:
    """One model-index entry: a metric measured on one split of one dataset config. The Hub groups entries by task
    type, dataset, config and split, so what else tells two entries apart (a student's map protocol) goes into
    `metric_config`, and how the value was computed (a sacrebleu signature) into `metric_args`."""

    dataset_id: str
    dataset_name: str
    config: str
    split: str
    metric: str  # "bleu" | "chrf" | "nll_reference" | "kl" | ...
    value: float
    task_name: str = "Translation"
    task_type: str = "translation"
    metric_name: str | None = None
    metric_config: str | None = None
    metric_args: dict | None = None


METRIC_NAMES = {"bleu": "BLEU", "chrf": "chrF", **{name: name.replace("_", " ") for name in FIDELITY_METRICS}}


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

    eval_results = [
        EvalResult(
            task_type=r.task_type,
            task_name=f"{r.task_name} {r.config}",
            dataset_type=r.dataset_id,
            dataset_name=r.dataset_name,
            dataset_config=r.config,
            dataset_split=r.split,
            metric_type=r.metric,
            metric_name=r.metric_name or METRIC_NAMES.get(r.metric, r.metric),
            metric_value=round(float(r.value), 4),
            metric_config=r.metric_config,
            metric_args=r.metric_args,
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
    corpus_name = public_ref(args.corpus)
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
- Data: `{corpus_name}` (configs {", ".join(pairs)}), train split{f" (origins: {args.train_origins})" if args.train_origins else ""}: {", ".join(f"{p} {n}" for p, n in summary["train_examples"].items())} pairs.
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
"""  # noqa: E501 (the card text, byte for byte)
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


def student_results(rows: Sequence[dict], dataset: str, config: str) -> tuple[list[MetricResult], str]:
    """A student's result rows (`results.jsonl`) as model-index entries (BLEU, chrF and the simulation metrics per
    split and map protocol; sacrebleu's signature in `metric_args`) and as the card's markdown table."""
    entries, lines = [], []
    for row in sorted(rows, key=lambda row: (row["split"], protocol_order(row["protocol"]))):
        protocol = row["protocol"]
        for metric in ("bleu", "chrf", *METRICS):
            if row.get(metric) is None:
                continue
            if metric in METRICS:
                args = {"description": METRICS[metric].description}
            else:
                args = {"signature": row[f"{metric}_signature"], "num_beams": row.get("num_beams")}
            entries.append(
                MetricResult(
                    dataset,
                    dataset,
                    config,
                    row["split"],
                    metric,
                    row[metric],
                    metric_name=f"{METRIC_NAMES.get(metric, metric.replace('_', ' '))} ({protocol})",
                    metric_config=protocol,
                    metric_args=args,
                )
            )
        gain = (row.get("bootstrap") or {}).get(PRIMARY_METRIC)
        versus = (
            f"{gain['delta']:+.4f} [{gain['ci95'][0]:+.4f}, {gain['ci95'][1]:+.4f}], p={gain['p_value']:.3f}"
            if gain
            else "-"
        )
        lines.append(
            f"| {protocol} | {row['split']} | {row['examples']} | {row['bleu']:.2f} | {row['chrf']:.2f} | "
            f"{row.get(PRIMARY_METRIC, float('nan')):.4f} | {row.get('agreement_reference', float('nan')):.3f} | "
            f"{versus} |"
        )
    if not lines:
        return entries, ""
    table = (
        f"""## Evaluation

`agkd evaluate` on the `{config}` pairs of `{dataset}`: sacrebleu corpus BLEU and chrF, and the teacher-forced
simulation metrics ({PRIMARY_METRIC.replace("_", " ")}: nats per token, lower is better; top-1 agreement with the
reference), under each test-time map protocol. The last column is the student minus its no-map baseline on
{PRIMARY_METRIC.replace("_", " ")} with the 95% paired-bootstrap interval.

| protocol | split | sentences | BLEU | chrF | {PRIMARY_METRIC.replace("_", " ")} | agreement reference | {PRIMARY_METRIC.replace("_", " ")} - baseline |
|---|---|---:|---:|---:|---:|---:|---|
"""  # noqa: E501 (the card text, byte for byte)
        + "\n".join(lines)
        + "\n"
    )
    return entries, table


def write_student_card(
    folder: Path, run: dict, rows: Sequence[dict] = (), evaluation_data: tuple[str, str] | None = None
) -> None:
    """The student's model card; `training/evaluation/evaluate.py` rewrites it with its result `rows` (of
    `evaluation_data`: dataset, config) in `model-index` and a results table."""
    results, table = student_results(rows, *evaluation_data) if rows and evaluation_data else ([], "")
    source, target = run["pair"].split("-")
    map_source = "no map (baseline)" if run["method"] == BASELINE else f"`{run['method']}` maps of the teacher"
    if run["attribution_config"] is None:
        map_source = "no map: the shared warm start that the cells of the `warm` design fine-tune from"
    if run["operator"] == "supervise":
        map_use = (
            f"whose decoder cross-attention was trained toward the rows of {map_source} (operator `supervise`, weight "
            f"{run.get('supervision_weight')}); it takes no map at test time, so nothing it sees at test time was "
            "computed from the reference: the leak-free primary design of AGKD's verdict"
        )
    else:
        map_use = (
            f"with {map_source} injected into its decoder cross-attention (operator `{run['operator']}`, normalisation "
            f"`{run['map_normalization']}`)"
        )
    design = (
        "fine-tuned from the no-map warm start `" + Path(run["init_from"]).name + "` (design `warm`, not the paper's)"
        if run.get("student_init") == "warm"
        else "trained from scratch (design `scratch`, the paper's)"
    )
    body = f"""
# {run["name"]}

An AGKD student: a Marian-style translation model ({source} -> {target}) {design}, {map_use}.
Its gain over the no-map baseline (teacher-forced token NLL of the reference, BLEU, chrF) scores how much the
attribution method teaches.

- Teacher: `{run["teacher"]}` (its tokenizer is used); data from `{run["attributions"]}`, config `{run["attribution_config"] or run["pair"]}`.
- Targets: `{run["target_kind"]}` ({"gold references, the paper protocol" if run["target_kind"] == "reference" else "the teacher's own translations: forward simulation"}).
- Seed {run["seed"]}, preset `{run["preset"]}`, {run["train_examples"]} training pairs, {run["steps"]} steps
  (best validation loss {run["best_validation_loss"]:.4f} at step {run["best_step"]}), {run["parameters"] / 1e6:.2f}M parameters.

## How to use

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

model = AutoModelForSeq2SeqLM.from_pretrained("<this repo>", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("<this repo>", trust_remote_code=True)  # it reads the remote-code config
inputs = tokenizer(["<a {source} sentence>"], return_tensors="pt")
# attribution_map: [batch, target_len, source_len], row t = target token t, column s = source token s
out = model.generate(**inputs, attribution_map=attribution_map)  # or attributor=<AgkdAttributorModel>, or no map
```

Remote code: pin `revision=` to a commit you have read. Training details are in `agkd_run.json`.

{table}"""  # noqa: E501 (the card text, byte for byte)
    write_model_card(
        folder,
        model_name=run["name"],
        body=body,
        languages=[source, target],
        results=results,
        tags=("translation", "marian", "attribution", "agkd", "custom_code"),
        datasets=[run["attributions"]] if "/" in run["attributions"] else (),
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
    # The Hub's model-index wants a task: "attribution-prediction" (no Hub task fits a map predictor).
    results = [
        MetricResult(
            run["attributions"], run["attributions"], run["attribution_config"], fid["split"], metric, fid[metric],
            task_name="Attribution prediction", task_type="attribution-prediction",
            metric_args={"rows": fid["rows"], "lower_is_better": metric == "kl"},
        )
        for metric in FIDELITY_METRICS
        if fid.get(metric) is not None
    ]
    write_model_card(
        folder,
        model_name=run["name"],
        body=body,
        languages=[source, target],
        pipeline_tag=None,
        results=results,
        tags=("attribution", "agkd", "custom_code"),
        datasets=[run["attributions"]] if "/" in run["attributions"] else (),
    )
