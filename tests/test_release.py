"""The release where it is pushed, each piece in a fresh virtual environment that never saw this checkout:

- the wheel and sdist (`python -m build`) with complete metadata;
- the Space folder (`agkd space-repo`) started as a Hub Space starts it, `python app.py` with only its
  `requirements.txt` installed (the built wheel standing in for PyPI), used by headless Chromium; a release without
  models gives a page that says so;
- a student and an Attributor with only torch, transformers, safetensors and sentencepiece (remote code);
- the maps and corpus with only `datasets`;
- the `evaluate` modules' Spaces (`agkd metric-spaces`) with only `evaluate` and their requirements, offline.

They cost minutes (virtual environments, pip): marked `slow` and `release`; `make test-release` runs them and CI
calls it after `make test`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.release]
pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# ================================================================================================ helpers
def run(command: list[str], timeout: int = 900, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, command))}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH that could reach this checkout, offline Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST"))}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **extra}


def fresh_venv(folder: Path, *requirements: str, torch: bool = False) -> Path:
    """A virtual environment without system site packages; torch (when asked) as the Makefile installs it: the CPU
    build from local disk, then its dependencies."""
    run([sys.executable, "-m", "venv", str(folder)])
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if torch:
        import torch as installed

        version = installed.__version__.split("+")[0]
        run([*pip, "--no-index", "--no-deps", f"torch=={version}"], cwd=folder, env=clean_env())
        run([*pip, f"torch=={version}"], cwd=folder, env=clean_env())
    if requirements:
        run([*pip, *requirements], cwd=folder, env=clean_env(), timeout=1500)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> float:
    """Seconds from now until `url` answers (the app's start-up when called right after it was launched)."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return time.monotonic() - start
        except OSError:
            time.sleep(1)
    pytest.fail(f"app.py did not serve {url} within {timeout} s:\n{log.read_text()[-4000:]}")


# ================================================================================================ fixtures
@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], timeout=600)
    return out


@pytest.fixture(scope="session")
def space_venv(dist, space_release_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(python, Space folder): the Space repo of the tiny release and a venv with only its requirements."""
    from agkd.space import repo

    folder = tmp_path_factory.mktemp("space-repo") / "agkd-space"
    assert (
        repo.main(["--folder", str(folder), "--results", str(space_release_dir.parent / "results" / "results.jsonl")])
        == 0
    )
    python = fresh_venv(tmp_path_factory.mktemp("venv-space") / "venv", torch=True)
    run([str(python), "-m", "pip", "install", "-q", "--find-links", str(dist), "-r", str(folder / "requirements.txt")],
        cwd=folder, env=clean_env(), timeout=1500)
    return python, folder


# ================================================================================================ the package
def test_wheel_and_sdist_carry_complete_metadata(dist):
    from agkd import __version__

    wheel = next(dist.glob(f"agkd-{__version__}-py3-none-any.whl"))
    sdist = next(dist.glob(f"agkd-{__version__}.tar.gz"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"agkd-{__version__}.dist-info/METADATA").decode()
    assert {name.split("/")[0] for name in names} == {"agkd", f"agkd-{__version__}.dist-info"}  # one installed name
    assert {"agkd/__init__.py", "agkd/space/README.md", "agkd/space/app.py", "agkd/space/repo.py",
            "agkd/modeling/modeling_agkd_student.py", "agkd/datasets_scripts/attribution/engines.py"} <= names
    from agkd.training.metrics import METRIC_MODULES

    # the evaluate modules, whole: agkd metric-spaces copies them from the installed package
    for name in METRIC_MODULES:
        files = (f"{name}.py", "README.md", "app.py", "requirements.txt")
        assert {f"agkd/training/metrics/{name}/{f}" for f in files} <= names
    assert f"agkd-{__version__}.dist-info/licenses/LICENSE" in names
    for field in (
        "License-Expression: Apache-2.0",
        "Project-URL: Homepage",
        "Classifier: Programming Language :: Python :: 3.11",
        "Provides-Extra: space",
        "Provides-Extra: distributed",
        "Requires-Dist: gradio",
        "Description-Content-Type: text/markdown",
    ):
        assert field in metadata, field
    assert "# AGKD" in metadata  # the README is the long description
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "space/README.md"} <= members


def test_the_space_folder_starts_and_serves_a_visitor_in_chromium(space_venv, space_release_dir, tmp_path):
    """`python app.py` in a copy of the Space folder, in the venv of its requirements only: the page translates a typed
    German sentence and draws the heatmaps; pointed at a release without models it shows why, not a traceback."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from space_browser import wait_for_translation

    from agkd import __version__

    python, folder = space_venv
    space = tmp_path / "agkd-space"
    shutil.copytree(folder, space)
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "requirements.txt", "results.jsonl"]
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if line and not line.startswith("#")] == [f"agkd[space]=={__version__}"]
    imports = run([str(python), "-c", "import agkd.space.app, importlib.util as u; print(u.find_spec('agkd').origin)"],
                  cwd=tmp_path, env=clean_env()).stdout
    assert "site-packages" in imports and str(REPO) not in imports
    cli = python.parent / "agkd"  # the wheel's console script works in the Space's environment
    assert run([str(cli), "--version"], cwd=tmp_path, env=clean_env()).stdout.strip() == f"agkd {__version__}"
    assert "space-repo" in run([str(cli), "--help"], cwd=tmp_path, env=clean_env()).stdout

    def serve(release: Path, name: str) -> tuple[subprocess.Popen, str, Path]:
        port = free_port()
        log = tmp_path / f"{name}.log"
        env = clean_env(AGKD_RELEASE=str(release), GRADIO_SERVER_PORT=str(port), OMP_NUM_THREADS="1",
                        GRADIO_EXAMPLES_CACHE=str(tmp_path / f"{name}-cache"))
        proc = subprocess.Popen(
            [str(python), "app.py"], cwd=space, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        seconds = wait_for_page(url, proc, log)
        # the Space's start-up as a visitor meets it (`pytest -rP` shows it; benchmarks/bench_space_startup.py: imports)
        print(f"time to first page ({name}): {seconds:.1f} s from `python app.py` to the first answer of {url}")
        return proc, url, log

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1400,2200", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    proc, url, log = serve(space_release_dir, "release")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        wait = WebDriverWait(driver, 180)
        box = wait.until(lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, "#source-text textarea")), None))
        box.send_keys("Der Mann sah das Haus und die Frau.")
        driver.find_element(By.ID, "translate-button").click()
        wait_for_translation(wait)
        assert driver.find_element(By.CSS_SELECTOR, "#baseline-output textarea").get_attribute("value").strip()
        assert "Translated in" in driver.find_element(By.ID, "status").text
        assert "attention" in driver.find_element(By.ID, "results").text  # the table from the shipped results.jsonl
        proc.terminate()
        proc.wait(timeout=30)
        proc, url, log = serve(tmp_path / "no-release", "empty")
        driver.get(url)
        problem = wait.until(lambda d: next(iter(d.find_elements(By.ID, "release-problem")), None))
        assert "No students found" in problem.text and "no-release" in problem.text
        assert "Traceback" not in driver.page_source
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()


def test_a_student_and_an_attributor_with_only_the_modeling_stack(tiny_students_dir, tiny_attributions_dir, tmp_path):
    """torch, transformers, safetensors, sentencepiece: the README's snippet (remote code) translates with a stored map
    and with the Attributor, stdin closed so a remote-code prompt would fail it."""
    import datasets

    python = fresh_venv(tmp_path / "venv", "transformers==5.24.0", "safetensors", "sentencepiece", torch=True)
    row = datasets.load_dataset(str(tiny_attributions_dir), "marian.de-en.attention", split="test",
                                cache_dir=str(tmp_path / "hf-cache"))[0]
    (tmp_path / "row.json").write_text(json.dumps({"source": row["source"], "attribution": row["attribution"]}))
    student = tiny_students_dir / "student-marian-de-en-attention-add-s0"
    attributor = tiny_students_dir / "attributor-marian-de-en-attention"
    script = f"""
import json, torch
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

repo = {str(student)!r}
student = AutoModelForSeq2SeqLM.from_pretrained(repo, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
row = json.load(open("row.json"))
inputs = tokenizer([row["source"]], return_tensors="pt")
out = student.generate(**inputs, attribution_map=torch.tensor([row["attribution"]]), max_new_tokens=12)
print("MAP", tokenizer.batch_decode(out, skip_special_tokens=True)[0])
attributor = AutoModel.from_pretrained({str(attributor)!r}, trust_remote_code=True)
rows = attributor(**inputs, labels=out[:, 1:]).attribution
assert torch.allclose(rows.sum(-1), torch.ones(rows.shape[:2]), atol=1e-4), rows.sum(-1)
out = student.generate(**inputs, attributor=attributor, max_new_tokens=12)
print("ATTRIBUTOR", tokenizer.batch_decode(out, skip_special_tokens=True)[0])
print(type(student).__module__)
"""
    proc = run([str(python), "-c", script], cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, timeout=600)
    assert "MAP " in proc.stdout and "ATTRIBUTOR " in proc.stdout
    assert "transformers_modules" in proc.stdout  # the repo's own code, not an installed agkd
    freeze = run([str(python), "-m", "pip", "freeze"], cwd=tmp_path, env=clean_env()).stdout.lower()
    assert "agkd" not in freeze and "datasets" not in freeze


def test_the_datasets_with_only_datasets(tiny_attributions_dir, toy_corpus_dir, tmp_path):
    python = fresh_venv(tmp_path / "venv", "datasets>=4,<6")
    script = f"""
import datasets
maps = datasets.load_dataset({str(tiny_attributions_dir)!r}, "marian.de-en.attention", cache_dir="cache")
row = maps["test"][0]
assert len(row["attribution"]) == len(row["target_ids"]) and len(row["attribution"][0]) == len(row["source_ids"])
corpus = datasets.load_dataset({str(toy_corpus_dir)!r}, "de-en", cache_dir="cache")
print(sorted(maps), maps["test"].num_rows, sorted(corpus), corpus["test"][0]["source"][:20])
"""
    proc = run([str(python), "-c", script], cwd=tmp_path, env=clean_env(), timeout=300)
    assert "['test', 'train', 'validation']" in proc.stdout
    freeze = run([str(python), "-m", "pip", "freeze"], cwd=tmp_path, env=clean_env()).stdout.lower()
    assert "torch" not in freeze and "transformers" not in freeze


# pip resolving evaluate (datasets, pyarrow, pandas) alone took over 600 s wall on a loaded 2-core machine
@pytest.mark.timeout(1800)
def test_the_metric_spaces_load_and_compute_with_only_evaluate_offline(tmp_path):
    """Each released metric Space folder (`hub/spaces/<name>` as `agkd metric-spaces` writes it) in a venv with only
    `evaluate` and the folders' requirements: `evaluate.load(<folder>)` with the Hub offline, then the examples of its
    inputs description (what the Hub's metric page shows), in a subprocess that never saw this checkout."""
    from agkd.training.metrics import METRIC_MODULES, release

    spaces = tmp_path / "hub" / "spaces"
    assert release.main(["--spaces_dir", str(spaces)]) == 0
    requirements = sorted(
        {
            line.strip()
            for name in METRIC_MODULES
            for line in (spaces / name / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
    )
    python = fresh_venv(tmp_path / "venv", "evaluate", *requirements)
    script = """
import doctest, json, sys
from pathlib import Path
import evaluate

folder = Path(sys.argv[1])
module = evaluate.load(str(folder))
assert isinstance(module, evaluate.Metric) and module.name == folder.name, module
examples = module.info.inputs_description
evaluate.load = lambda *args, **kwargs: module  # the examples load `<org>/<name>`: the Hub is offline
test = doctest.DocTestParser().get_doctest(examples, {"evaluate": evaluate}, folder.name, None, 0)
runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
runner.run(test)
print(json.dumps({"tries": runner.tries, "failures": runner.failures}))
"""
    for name in METRIC_MODULES:
        env = clean_env(HF_EVALUATE_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
        proc = run([str(python), "-c", script, str(spaces / name)], cwd=tmp_path, env=env, timeout=600)
        outcome = json.loads(proc.stdout.strip().splitlines()[-1])
        assert outcome["tries"] > 0 and outcome["failures"] == 0, (name, proc.stdout[-3000:])
    freeze = run([str(python), "-m", "pip", "freeze"], cwd=tmp_path, env=clean_env()).stdout.lower()
    assert "agkd" not in freeze and "torch" not in freeze
