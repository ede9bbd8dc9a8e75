"""The `evaluate` modules of training/metrics: the registry, each module loaded offline from its folder and computing
what its module-level functions compute, the simulation figures against scoring's, and the release's metric Spaces."""

from __future__ import annotations

import doctest
import importlib.util
import os

import numpy as np
import pytest
import torch

from agkd.training import metrics
from agkd.training.evaluation import scoring
from agkd.training.metrics import release

EXPECTED = {"simulation", "attribution_aer", "attribution_aopc"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))  # evaluate copies the script there
    import evaluate.config

    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)


def script(name: str):
    """The module's script imported as a plain Python module (its pure functions)."""
    spec = importlib.util.spec_from_file_location(f"_agkd_metric_{name}", metrics.METRIC_MODULES[name] / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_registry_lists_exactly_the_module_folders():
    present = {p.name for p in metrics.METRICS_DIR.iterdir() if p.is_dir() and (p / f"{p.name}.py").is_file()}
    assert set(metrics.METRIC_MODULES) == present and "simulation" in present
    for name, folder in metrics.METRIC_MODULES.items():
        assert {"__init__.py", "README.md", "app.py", "requirements.txt", f"{name}.py"} <= {
            p.name for p in folder.iterdir()
        }
        card = (folder / "README.md").read_text()
        assert card.startswith("---\n") and "app_file: app.py" in card and "- evaluate\n- metric" in card, name
        assert (folder / "__init__.py").read_text() == ""
        # evaluate's loader reads one import per line: `import a, b` would make it look for a module named "a,"
        assert not [
            line
            for line in (folder / f"{name}.py").read_text().splitlines()
            if line.startswith("import ") and "," in line
        ]
    with pytest.raises(KeyError, match="simulation"):
        metrics.load("nonexistent")


# The headings of the Hub's metric card template (evaluate's `templates/metric/README.md`), in every card
CARD_HEADINGS = ["## Metric Description", "## How to Use", "### Inputs", "### Output Values", "## Limitations and Bias",
                 "## Citation"]


def test_the_module_folders_ship_alike():
    """Review L11: one set of pins, the release's own launcher and the template's card headings in every folder, so
    that a folder loaded as it is from the repository behaves as its released Space."""
    pins = {name: (folder / "requirements.txt").read_text() for name, folder in metrics.METRIC_MODULES.items()}
    assert len(set(pins.values())) == 1, pins
    for name, folder in metrics.METRIC_MODULES.items():
        assert (folder / "app.py").read_text() == release.launcher(name), name
        headings = [line for line in (folder / "README.md").read_text().splitlines() if line in CARD_HEADINGS]
        assert headings == CARD_HEADINGS, (name, headings)


def test_the_three_expected_modules_are_registered():
    assert set(metrics.METRIC_MODULES) == EXPECTED


@pytest.mark.parametrize("name", sorted(metrics.METRIC_MODULES))
def test_each_module_loads_offline_and_runs_its_card_examples(name, offline, monkeypatch):
    """`evaluate.load(<folder>)` with the Hub offline gives the module's Metric; the examples of its inputs
    description (`>>>` lines, as on the Hub's metric pages) run against it and print what they promise."""
    import evaluate

    module = metrics.load(name)
    assert isinstance(module, evaluate.Metric) and module.name == name
    examples = module.info.inputs_description
    if ">>>" not in examples:
        pytest.skip(f"{name}'s inputs description has no examples")
    monkeypatch.setattr(evaluate, "load", lambda *args, **kwargs: module)  # `evaluate.load("agkd/<name>")` in them
    test = doctest.DocTestParser().get_doctest(examples, {"evaluate": evaluate, "np": np}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


# ================================================================================================ simulation
def toy_forced_decode(seed: int = 0):
    """Logits `[B, T, V]` and labels with -100 padding of a toy forced decode, and the per-token inputs of the
    module (top-1 ids, target ids, token NLLs) without the padding."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 7, 11, generator=generator) * 2
    labels = torch.randint(0, 11, (6, 7), generator=generator)
    for i, length in enumerate([7, 3, 5, 1, 6, 4]):
        labels[i, length:] = -100
    log_probs = logits.double().log_softmax(-1)
    keep = labels != -100
    predictions = [lp.argmax(-1)[k].tolist() for lp, k in zip(log_probs, keep, strict=True)]
    references = [y[k].tolist() for y, k in zip(labels, keep, strict=True)]
    nll = [
        (-lp.gather(-1, y.clamp(min=0)[:, None])[:, 0])[k].tolist()
        for lp, y, k in zip(log_probs, labels, keep, strict=True)
    ]
    return logits, labels, {"predictions": predictions, "references": references, "nll": nll}


def test_simulation_figures_equal_scorings(offline):
    module = metrics.load("simulation")
    logits, labels, inputs = toy_forced_decode(0)
    stats = scoring.TokenStatistics(*(s.numpy() for s in scoring.sentence_statistics(logits, labels)))
    result = module.compute(**inputs)
    assert result["nll"] == pytest.approx(stats.corpus()["nll"], rel=1e-6)  # scoring's log-softmax runs in float32
    assert result["agreement"] == stats.corpus()["agreement"]
    assert (result["tokens"], result["sentences"]) == (26, 6)
    # with a baseline: the paired bootstrap of scoring on the same sums
    base_logits, _, base = toy_forced_decode(1)
    base_stats = scoring.TokenStatistics(*(s.numpy() for s in scoring.sentence_statistics(base_logits, labels)))
    base = {"predictions": [lp.argmax(-1)[y != -100].tolist() for lp, y in zip(base_logits, labels, strict=True)],
            "nll": [(-lp.double().log_softmax(-1).gather(-1, y.clamp(min=0)[:, None])[:, 0])[y != -100].tolist()
                    for lp, y in zip(base_logits, labels, strict=True)]}
    paired = module.compute(**inputs, baseline_predictions=base["predictions"], baseline_nll=base["nll"],
                            bootstrap_samples=200, seed=7)["paired_bootstrap"]
    expected = scoring.paired_bootstrap_tokens(stats, base_stats, samples=200, seed=7)
    assert paired["agreement"] == expected["agreement"]
    for key in ("delta", "p_value"):
        assert paired["nll"][key] == pytest.approx(expected["nll"][key], rel=1e-5)
    assert paired["nll"]["ci95"] == pytest.approx(expected["nll"]["ci95"], rel=1e-5)


def test_simulation_pure_functions_are_scorings_and_refuse_mismatches():
    simulation = script("simulation")
    sums = simulation.SentenceSums(np.array([1.5, 2.0, 0.5]), np.array([1, 2, 0]), np.array([3, 4, 1]))
    stats = scoring.TokenStatistics(*sums)
    assert simulation.corpus_ratios(*sums) == stats.corpus() == {"nll": 0.5, "agreement": 0.375}
    assert simulation.paired_bootstrap(sums, sums._replace(nll=sums.nll + 1), 50, 3) == scoring.paired_bootstrap_tokens(
        stats, scoring.TokenStatistics(sums.nll + 1, sums.correct, sums.tokens), 50, 3)
    assert simulation.sentence_sums([[1, 2]], [[1, 3]], [[0.5, 1.0]]) == (1.5, 1, 2)
    with pytest.raises(ValueError, match="sentence 0"):
        simulation.sentence_sums([[1, 2]], [[1]], [[0.5, 1.0]])
    with pytest.raises(ValueError, match="token counts differ"):
        simulation.paired_bootstrap(sums, sums._replace(tokens=sums.tokens + 1), 10, 0)


# ================================================================================================ the release
def test_the_release_writes_every_module_as_a_space_and_push_plans_them(tmp_path, caplog, monkeypatch):
    from agkd.training.orchestration import push

    spaces = tmp_path / "smoke" / "hub" / "spaces"
    (spaces / "agkd-space").mkdir(parents=True)
    (spaces / "simulation").mkdir()
    (spaces / "simulation" / "stale.txt").write_text("an older release's file")
    assert release.main(["--spaces_dir", str(spaces)]) == 0
    for name, folder in metrics.METRIC_MODULES.items():
        written = spaces / name
        expected = {
            p.name for p in folder.iterdir() if p.name != "__init__.py" and not p.name.startswith((".", "__pycache__"))
        }
        assert {p.name for p in written.iterdir()} == expected, name
        assert (written / f"{name}.py").read_bytes() == (folder / f"{name}.py").read_bytes()
        assert (written / "app.py").read_text() == release.launcher(name)
        assert str(tmp_path) not in "".join(p.read_text() for p in written.iterdir())
    assert release.main(["--spaces_dir", str(spaces), "--org", "my-org", "--only", "simulation"]) == 0
    assert 'ORG = \'my-org\'' in (spaces / "simulation" / "app.py").read_text()
    assert release.main(["--spaces_dir", str(spaces), "--only", "nope"]) == 2
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with caplog.at_level("INFO"):
        assert push.main(["--org", "agkd-org", "--preset", "smoke", "--runs_dir", str(tmp_path)]) == 0
    planned = {(u.repo_type, u.repo_id) for u in push.planned_uploads(spaces.parent, "agkd-org")}
    assert planned == {("space", f"agkd-org/{name}") for name in ["agkd-space", *metrics.METRIC_MODULES]}
    assert all(f"agkd-org/{name}" in caplog.text for name in metrics.METRIC_MODULES)


def test_the_launcher_loads_the_org_repo_or_its_own_folder(tmp_path, monkeypatch):
    """app.py without gradio: its `evaluate.load` argument, with and without an org."""
    import evaluate
    import evaluate.utils

    loaded = []
    monkeypatch.setattr(evaluate, "load", lambda path, **kwargs: loaded.append(path))
    monkeypatch.setattr(evaluate.utils, "launch_gradio_widget", lambda module: None)
    monkeypatch.delenv("AGKD_HUB_ORG", raising=False)
    for org in (None, "my-org"):
        app = tmp_path / str(org) / "app.py"
        app.parent.mkdir()
        app.write_text(release.launcher("simulation", org))
        exec(compile(app.read_text(), str(app), "exec"), {"__file__": str(app)})
    monkeypatch.setenv("AGKD_HUB_ORG", "env-org")
    exec(compile(release.launcher("simulation"), str(app), "exec"), {"__file__": str(app)})
    assert loaded == [str(tmp_path / "None"), "my-org/simulation", "env-org/simulation"]
    assert os.environ["AGKD_HUB_ORG"] == "env-org"
