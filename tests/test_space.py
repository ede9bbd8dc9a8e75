"""The Gradio Space: callbacks called directly, the app over loopback with gradio_client, and a headless Chromium.

The release is assembled from the shared tiny fixtures (a Marian teacher, its attention/uniform maps, a baseline and
an attention/add student, their results) plus an untrained tiny Attributor, in the Hub layout the app reads.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from agkd.datasets_scripts.release_layout import protocol_order
from agkd.space import release as release_module
from agkd.space.app import MAP_SOURCES, SpaceApp, build_demo, check_text, dominant_script, guess_language
from agkd.space.plots import display_token, heatmap_figure
from agkd.space.release import Release, SpaceError

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# ================================================================================================ fixtures
@pytest.fixture(scope="session")
def app(space_release_dir) -> SpaceApp:
    return SpaceApp(Release(space_release_dir))


@pytest.fixture(scope="session")
def example(app) -> str:
    examples = app.examples("de-en")
    assert examples, "no test-split examples found"
    return examples[0]


def outputs_dict(outputs) -> dict:
    return dict(zip(("status", "baseline", "injected", "teacher", "figure", "details"), outputs, strict=True))


# ================================================================================================ input checks
def test_input_checks_name_the_problem():
    assert check_text("  Der Hund sieht heute das Haus.  ", "de-en") == "Der Hund sieht heute das Haus."
    with pytest.raises(SpaceError, match="Type a sentence"):
        check_text("   ", "de-en")
    with pytest.raises(SpaceError, match="limit is 300"):
        check_text("Hund " * 100, "de-en")
    with pytest.raises(SpaceError, match="Arabic script.*ar-en"):
        check_text("يرى الكلب القطة اليوم.", "de-en")
    with pytest.raises(SpaceError, match="Latin script.*de-en or fr-en"):
        check_text("Der Hund sieht die Katze.", "ar-en")
    with pytest.raises(SpaceError, match="Cyrillic script"):
        check_text("Собака видит кошку.", "fr-en")
    with pytest.raises(SpaceError, match="no letters"):
        check_text("12 + 7 = 19 !", "de-en")
    with pytest.raises(SpaceError, match="looks like French.*fr-en"):
        check_text("Le chien et la maison sont dans le jardin.", "de-en")
    with pytest.raises(SpaceError, match="looks like English"):
        check_text("The dog and the cat are in the garden.", "fr-en")
    assert dominant_script("Étoile") == "LATIN" and guess_language("Haus") is None


def test_arabic_labels_are_shaped_and_in_visual_order():
    label = display_token("\u2581الكلب")
    assert label != "_الكلب"  # reshaped into contextual forms and reordered
    assert label.startswith("ﺐ") and label.endswith("_")  # the last letter, final form, is drawn first (leftmost)
    assert display_token("\u2581Hund") == "_Hund"
    fig = heatmap_figure(
        [{"title": "ar", "matrix": np.eye(3), "rows": ["▁the", "▁dog", "</s>"], "columns": ["▁يرى", "▁الكلب", "</s>"]}]
    )
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[1] == label


# ================================================================================================ release
def test_release_discovery(app, space_release_dir):
    release = app.release
    assert release.pairs() == ["de-en"]
    assert release.teachers("de-en") == ["marian"]
    assert release.methods("de-en", "marian") == ["attention"]
    assert release.operators("de-en", "marian", "attention") == ["supervise", "add"]  # the verdict's design first
    assert release.student("de-en", "marian", "none").name == "student-marian-de-en-none-s0"
    assert release.attributor_ref("marian", "de-en", "attention").endswith("attributor-marian-de-en-attention")
    assert release.attributor_ref("marian", "de-en", "saliency") is None
    with pytest.raises(SpaceError, match="Available: attention/add"):
        release.student("de-en", "marian", "attention", "multiply")
    assert Release(space_release_dir.parent / "missing").pairs() == []


def test_models_are_loaded_once(app):
    ref = app.release.student("de-en", "marian", "none").ref
    assert release_module.load_student(ref) is release_module.load_student(ref)


# ================================================================================================ callbacks
def test_translate_an_example(app, example):
    out = outputs_dict(app.translate(example, "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("✅"), out["status"]
    assert out["baseline"] and out["injected"] and out["teacher"]
    assert "student-marian-de-en-attention-add-s0" in out["details"]
    fig = out["figure"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["teacher map: attention (teacher)", "Attributor reconstruction", "student cross-attention (add)"]
    teacher_ax, attributor_ax, student_ax = (ax for ax in fig.axes if ax.get_title())
    # Tokens on the axes: source pieces on x, the teacher's translation pieces on y.
    x_labels = [t.get_text() for t in teacher_ax.get_xticklabels()]
    assert x_labels[-1] == "</s>" and len(x_labels) == teacher_ax.images[0].get_array().shape[1]
    assert [t.get_text() for t in teacher_ax.get_yticklabels()][-1] == "</s>"
    # The Attributor's rows and the student's cross-attention rows are distributions over the source.
    np.testing.assert_allclose(attributor_ax.images[0].get_array().sum(-1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(student_ax.images[0].get_array().sum(-1), 1.0, rtol=1e-4)


def test_the_stored_teacher_map_is_used_when_it_matches(app, example):
    out = outputs_dict(app.translate(example, "de-en", "marian", "attention", "add", "teacher"))
    rows = release_module.stored_maps(app.release.dataset_ref("agkd-attributions"), "marian.de-en.attention.teacher")
    stored = rows[example]
    assert "stored in agkd-attributions" in out["details"]
    teacher_ax = next(ax for ax in out["figure"].axes if ax.get_title().startswith("teacher map"))
    np.testing.assert_allclose(teacher_ax.images[0].get_array(), np.asarray(stored["attribution"]), rtol=1e-6)
    assert [t.get_text() for t in teacher_ax.get_xticklabels()] == [display_token(t) for t in stored["source_tokens"]]


@pytest.mark.parametrize("method", ["attention", "saliency", "integrated_gradients"])
def test_live_maps_equal_the_extraction_maps(app, tiny_marian_dir, method, monkeypatch):
    """A typed sentence's map is what `agkd extract` stores for it (fast engine == Inseq, research/fastprobe.md), at
    the release's integrated-gradients steps when the CPU cap allows them."""
    import torch

    from agkd.datasets_scripts.attribution.inseq_engine import attribute_rows
    from agkd.datasets_scripts.attribution.teacher import Teacher
    from agkd.space import app as app_module

    monkeypatch.setattr(app_module, "LIVE_IG_STEPS", 50)

    source, target = "die Frau kennt heute den Baum.", "The woman knows the tree today."
    teacher = release_module.load_attribution_teacher("de-en", str(tiny_marian_dir), "marian")
    source_ids, target_ids = teacher.encode(source, target)
    live = app.teacher_map("marian", "de-en", method, source, target, source_ids, target_ids)
    assert live["note"].startswith("computed now with the fast engine")
    reference = Teacher(str(tiny_marian_dir), "de-en", torch.device("cpu"), compat=True)
    row = {
        "id": "x",
        "source": source,
        "target": target,
        "target_kind": "teacher",
        "source_ids": source_ids,
        "target_ids": target_ids,
    }
    expected = np.asarray(attribute_rows(reference, method, [row], batch_size=1, seed=42)[0]["attribution"])
    np.testing.assert_allclose(live["map"], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


IG_SOURCE, IG_TARGET = "die Frau kennt heute den Baum.", "The woman knows the tree today."


def live_ig_map(app, teacher_dir, release_steps: int) -> tuple[dict, list[int], list[int]]:
    """The live integrated-gradients map of IG_SOURCE/IG_TARGET on a release whose maps used `release_steps`."""
    from agkd.datasets_scripts.release_layout import META_DIR

    teacher = release_module.load_attribution_teacher("de-en", str(teacher_dir), "marian")
    source_ids, target_ids = teacher.encode(IG_SOURCE, IG_TARGET)
    meta = (
        Path(app.release.dataset_ref("agkd-attributions")) / META_DIR / "marian.de-en.integrated_gradients.teacher.json"
    )
    meta.write_text(json.dumps({"attribute_args": {"n_steps": release_steps, "internal_batch_size": 16}, "splits": {}}))
    try:
        live = app.teacher_map("marian", "de-en", "integrated_gradients", IG_SOURCE, IG_TARGET, source_ids, target_ids)
    finally:
        meta.unlink()
    return live, source_ids, target_ids


def test_live_integrated_gradients_use_the_release_steps(app, tiny_marian_dir):
    """A release extracted with `--ig_steps N` gets live maps with N steps too, so typed and stored maps compare."""
    import torch

    from agkd.datasets_scripts.attribution.inseq_engine import attribute_rows
    from agkd.datasets_scripts.attribution.teacher import Teacher

    live, source_ids, target_ids = live_ig_map(app, tiny_marian_dir, 4)
    assert "4 integrated-gradients steps" in live["note"], live["note"]
    reference = Teacher(str(tiny_marian_dir), "de-en", torch.device("cpu"), compat=True)
    row = {
        "id": "x",
        "source": IG_SOURCE,
        "target": IG_TARGET,
        "target_kind": "teacher",
        "source_ids": source_ids,
        "target_ids": target_ids,
    }
    expected = np.asarray(attribute_rows(reference, "integrated_gradients", [row], 1, 42, ig_steps=4)[0]["attribution"])
    np.testing.assert_allclose(live["map"], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    default = attribute_rows(reference, "integrated_gradients", [row], 1, 42)[0]["attribution"]
    assert np.abs(np.asarray(default) - expected).max() > 1e-3 * np.abs(expected).max()  # the steps matter


def test_live_integrated_gradients_are_capped_on_cpu(app, tiny_marian_dir, monkeypatch):
    """Maps extracted with 50 steps: a typed sentence gets `LIVE_IG_STEPS` of them, and the page says so."""
    from agkd.space import app as app_module

    monkeypatch.setattr(app_module, "LIVE_IG_STEPS", 3)
    live, source_ids, target_ids = live_ig_map(app, tiny_marian_dir, 50)
    assert "3 integrated-gradients steps, not the release's 50: capped on CPU" in live["note"], live["note"]
    assert live["map"].shape == (len(target_ids), len(source_ids))


def test_a_release_built_with_hub_teachers_serves_their_hub_checkpoint(space_release_dir, tmp_path, example):
    """`--hub_teachers` writes no teacher folder: the page loads the Hub id its students learnt from (offline here,
    so the page says which checkpoint it could not load, not that the teacher is missing)."""
    hub = tmp_path / "hub"
    shutil.copytree(space_release_dir, hub, symlinks=True)
    (hub / "models" / "teacher-marian-de-en").unlink()
    for link in (hub / "models").glob("student-*"):
        link.unlink()
        shutil.copytree(space_release_dir / "models" / link.name, link)
        run = json.loads((link / "agkd_run.json").read_text())
        (link / "agkd_run.json").write_text(json.dumps({**run, "teacher": "Helsinki-NLP/opus-mt-de-en"}))
    release = Release(hub)
    assert release.teacher_ref("marian", "de-en") == "Helsinki-NLP/opus-mt-de-en"
    out = outputs_dict(SpaceApp(release).translate(example, "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("⚠️ Cannot load the model at `Helsinki-NLP/opus-mt-de-en`"), out["status"]


def test_a_teacher_the_fast_engine_refuses_falls_back_to_inseq(app, tiny_marian_dir, monkeypatch):
    from agkd.datasets_scripts.attribution import fast_engine as fast_attribution

    monkeypatch.setattr(
        fast_attribution, "refusal", lambda model, method: "no embedding divisor reproduces this teacher"
    )
    source, target = "die Frau kennt heute den Baum.", "The woman knows the tree today."
    teacher = release_module.load_attribution_teacher("de-en", str(tiny_marian_dir), "marian")
    source_ids, target_ids = teacher.encode(source, target)
    live = app.teacher_map("marian", "de-en", "saliency", source, target, source_ids, target_ids)
    assert live["note"].startswith("computed now with Inseq"), live["note"]
    assert live["map"].shape == (len(target_ids), len(source_ids))


def test_a_typed_sentence_gets_a_live_map(app):
    sentence = "Der Baum findet oft das Kind."
    out = outputs_dict(app.translate(sentence, "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("✅"), out["status"]
    assert "computed now with the fast engine (probability check" in out["details"]
    check = float(out["details"].split("probability check ")[1].split(")")[0])
    assert check < 1e-4  # the engine's probabilities are the teacher's


def test_gold_and_attributor_protocols(app, example):
    gold = outputs_dict(app.translate(example, "de-en", "marian", "attention", "add", "gold"))
    assert gold["status"].startswith("✅") and "stored gold map" in gold["details"], gold["status"]
    attributor = outputs_dict(app.translate(example, "de-en", "marian", "attention", "add", "attributor"))
    assert attributor["status"].startswith("✅") and attributor["injected"], attributor["status"]


@pytest.mark.parametrize(
    ("text", "pair", "method", "operator", "map_source", "message"),
    [
        ("", "de-en", "attention", "add", "teacher", "Type a sentence"),
        ("Hund " * 100, "de-en", "attention", "add", "teacher", "limit is 300"),
        ("يرى الكلب القطة اليوم.", "de-en", "attention", "add", "teacher", "Arabic script"),
        ("يرى الكلب القطة اليوم.", "ar-en", "attention", "add", "teacher", "not in the release folder"),
        ("Der Hund sieht die Katze.", "de-en", "attention", "multiply", "teacher", "Available: attention/add"),
        ("Der Hund sieht die Katze.", "de-en", "attention", "add", "gold", "only for test-split sentences"),
        ("Der Hund sieht die Katze.", "de-en", "attention", "add", "nonsense", "Unknown test-time map"),
        (" ".join(["xy"] * 90), "de-en", "attention", "add", "teacher", "at most 64"),
    ],
)
def test_bad_input_gives_a_readable_message(app, text, pair, method, operator, map_source, message):
    out = outputs_dict(app.translate(text, pair, "marian", method, operator, map_source))
    assert out["status"].startswith("⚠️") and message in out["status"], out["status"]
    assert "Traceback" not in out["status"] and out["figure"] is None and out["injected"] == ""


def test_a_missing_model_folder_is_reported(space_release_dir, tmp_path, example):
    hub = tmp_path / "hub"
    shutil.copytree(space_release_dir, hub, symlinks=True)
    broken = hub / "models" / "student-marian-de-en-attention-add-s0"
    broken.unlink()
    shutil.copytree(space_release_dir / "models" / broken.name, broken)
    (broken / "model.safetensors").unlink()
    out = outputs_dict(SpaceApp(Release(hub)).translate(example, "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("⚠️ Cannot load the model"), out["status"]
    (hub / "models" / "teacher-marian-de-en").unlink()
    out = outputs_dict(SpaceApp(Release(hub)).translate(example, "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("⚠️") and "teacher" in out["status"], out["status"]


def test_results_table_of_the_pair(app):
    text = app.results_markdown("de-en", "marian")
    assert "| method | add |" in text and "| attention |" in text
    assert (
        "#### protocol `gold`" in text
        and "Baseline (no map): BLEU" in text
        and "Order by mean gain on `nll_reference` (not a verdict)" in text
    )
    assert "*" not in text.split("#### protocol")[1]  # the every-cell tables carry no marks: only the verdict's rules
    sections = [line.split("`")[1] for line in text.splitlines() if line.startswith("#### protocol")]
    # The primary design's protocol first (it carries the verdict), then the reading order.
    assert sections[0] == "train-only" and "the primary design (leak-free)" in text
    assert len(sections) > 1 and sections[1:] == sorted(sections[1:], key=protocol_order)
    assert "**Primary design** (carries the report's verdict): operator `supervise`" in text
    assert "No evaluation results" in SpaceApp(
        Release(app.release.root, results=app.release.root / "none.jsonl")
    ).results_markdown("de-en")


def test_the_verdict_table_quotes_the_reports_own_estimates(space_release_dir, tmp_path):
    """One voice: the page's verdict table is `verdict.json` (the report's estimates, intervals and Holm marks),
    labelled, not a recomputation of its own."""
    import json
    import shutil

    results = tmp_path / "results.jsonl"
    shutil.copy2(Release(space_release_dir).results_path, results)
    cell = {"text": "+0.0123* [+0.0050, +0.0196]", "mark": True}
    title = "marian de-en, targets `reference`, init `scratch`, split `test`"
    (tmp_path / "verdict.json").write_text(json.dumps({title: {
        "warm_starts": ["a", "b"], "sentences": 399,
        "methods": {"attention": {"baseline": cell, "shuffled": None, "diagonal": None}},
    }}))
    text = SpaceApp(Release(space_release_dir, results=results)).results_markdown("de-en", "marian")
    assert f"#### The verdict's estimates: {title}" in text
    assert "| method | gain over no map | over its shuffled twin | over diagonal |" in text
    assert "| attention | +0.0123* [+0.0050, +0.0196] | - | - |" in text
    assert "2 independent warm starts and 399 test sentences" in text


def test_an_empty_release_still_builds_a_page(tmp_path):
    demo = build_demo(Release(tmp_path / "nothing"))
    out = outputs_dict(demo.agkd_app.translate("Der Hund.", "de-en", "marian", "attention", "add", "teacher"))
    assert out["status"].startswith("⚠️") and "make demo" in out["status"]


# ================================================================================================ over loopback
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(space_release_dir, tmp_path_factory):
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(tmp_path_factory.mktemp("gradio-examples"))
    demo = build_demo(Release(space_release_dir))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo
    demo.close()


def test_the_app_over_loopback_with_gradio_client(served, example):
    from gradio_client import Client

    url, _ = served
    client = Client(url, verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert "/translate" in endpoints and "/results" in endpoints
    status, baseline, injected, teacher, plot, details = client.predict(
        example, "de-en", "marian", "attention", "add", "teacher", api_name="/translate"
    )
    assert status.startswith("✅") and baseline and injected and teacher
    assert plot and plot.get("plot"), "the heatmap figure did not come back"
    # Bad input: a message, and the app keeps serving.
    status, *_ = client.predict("", "de-en", "marian", "attention", "add", "teacher", api_name="/translate")
    assert status.startswith("⚠️ Type a sentence")
    status, *_ = client.predict(example, "de-en", "marian", "attention", "replace", "teacher", api_name="/translate")
    assert status.startswith("⚠️ No student")
    assert client.predict(example, "de-en", "marian", "attention", "add", "gold", api_name="/translate")[0].startswith(
        "✅"
    )
    assert "| attention |" in client.predict("de-en", "marian", api_name="/results")


# ================================================================================================ headless browser
@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Debian's Chromium and chromedriver; installed with apt-get when missing and possible (never downloaded by a test
    tool)."""
    if (
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))
        and shutil.which("apt-get")
        and os.geteuid() == 0
    ):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300, check=False, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
            capture_output=True,
            timeout=600,
            check=False,
            env=env,
        )
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed and could not be installed (apt-get install -y "
            "chromium chromium-driver)"
        )
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium; it is in the dev extra)")
    return CHROMIUM, CHROMEDRIVER


def test_a_visitor_submits_an_example_in_chromium(served, chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from space_browser import wait_for_translation

    url, _ = served
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        # The first example row of the Examples table (lazily cached: the first click runs the models).
        cell = wait.until(
            lambda d: next(
                iter(
                    d.find_elements(
                        By.CSS_SELECTOR, "#examples tbody tr td, #examples button.gallery-item, #examples .gallery-item"
                    )
                ),
                None,
            )
        )
        cell.click()
        wait_for_translation(wait)
        assert driver.find_element(By.CSS_SELECTOR, "#teacher-output textarea").get_attribute("value").strip()
        assert "Translated in" in driver.find_element(By.ID, "status").text
        time.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.execute_script("document.querySelector('#heatmaps').scrollIntoView({block: 'center'})")
        assert driver.save_screenshot(str(ARTIFACTS / "space-browser.png"))
        driver.set_window_size(1400, max(2200, driver.execute_script("return document.body.scrollHeight")))
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(ARTIFACTS / "space-browser-full.png"))
    finally:
        driver.quit()


def test_the_page_lists_the_choices(served):
    """The page's config (what a browser renders) names the example sentences and the available methods."""
    import json
    import urllib.request

    url, _ = served
    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    dump = json.dumps(config, ensure_ascii=False)
    assert "attention" in dump and "Examples from the held-out test split" in dump
    assert set(MAP_SOURCES) <= set(dump.replace('"', " ").split())


def test_the_space_stage_of_the_cli(capsys):
    from agkd.training.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["space", "--help"])
    assert exit_info.value.code == 0
    assert "--release" in capsys.readouterr().out


def test_the_space_repo_folder_is_self_sufficient(tmp_path):
    """`agkd space-repo` writes what a Hub Space runs: the card with the Space header, the package pin, a launcher that
    imports only installed packages, the results; written whole, so files an older release left do not survive."""
    import ast

    import yaml

    from agkd import __version__
    from agkd.space import repo

    folder = tmp_path / "agkd-space"
    folder.mkdir()
    (folder / "release.py").write_text("stale")
    results = tmp_path / "results.jsonl"
    results.write_text('{"student": "s"}\n')
    assert repo.main(["--folder", str(folder), "--results", str(results)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "app.py", "requirements.txt", "results.jsonl"]
    header = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py" and header["sdk_version"].startswith("6.")
    pins = [
        line for line in (folder / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert pins == [f"agkd[space]=={__version__}"]
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse((folder / "app.py").read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"os", "sys", "pathlib", "agkd"}  # the installed agkd package, nothing from a checkout
    assert (folder / "results.jsonl").read_text() == results.read_text()
