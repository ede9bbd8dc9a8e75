"""The executors on real processes: dependency scheduling on this machine's pool, and a real Ray (embedded, and a
two-node cluster in the slow tests) that retries a job whose worker was killed. Every Ray cluster runs inside a
network namespace the test makes (`unshare -n`, loopback up), so its traffic stays on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agkd.training.orchestration.executors import Job, LocalExecutor, schedule

REPO = Path(__file__).resolve().parent.parent


def events(path: Path) -> dict[str, list[dict]]:
    by_name: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        by_name.setdefault(event["name"], []).append(event)
    return by_name


def test_local_executor_starts_a_job_when_its_inputs_exist_not_when_its_stage_ends(tmp_path):
    record = tmp_path / "events.jsonl"

    def job(name, needs=(), sleep=0.0):
        argv = ["--name", name, "--record", str(record), "--sleep", str(sleep)]
        return Job("test", name, "tests.pipeline_job", argv, needs=needs, makes=(name,), shared=True)

    jobs = [job("maps-a", sleep=0.5), job("maps-b", sleep=6.0), job("student-a", needs=("maps-a",)),
            job("report", needs=("student-a", "maps-b"))]
    executor = LocalExecutor(2, tmp_path / "logs")
    try:
        failed, seconds, left = schedule(jobs, executor)
    finally:
        executor.close()
    assert failed == [] and left == [] and set(seconds) == {"test"}
    seen = events(record)
    end = {name: e[-1]["time"] for name, e in seen.items() if e[-1]["event"] == "end"}
    start = {name: e[0]["time"] for name, e in seen.items()}
    assert start["student-a"] >= end["maps-a"] and start["student-a"] < end["maps-b"]  # not a stage barrier
    assert start["report"] >= max(end["student-a"], end["maps-b"])


def test_a_time_boxed_slice_starts_nothing_past_its_deadline_and_the_next_one_goes_on(tmp_path):
    """`agkd pipeline --max_minutes`: past the deadline no job starts, running ones finish, and the jobs left are
    returned (the next slice runs them; the stages skip what the first finished)."""
    record = tmp_path / "events.jsonl"

    def job(name, needs=(), sleep=0.0):
        argv = ["--name", name, "--record", str(record), "--sleep", str(sleep)]
        return Job("test", name, "tests.pipeline_job", argv, needs=needs, makes=(name,), shared=True)

    jobs = [job("first", sleep=3.0), job("second", needs=("first",)), job("third", needs=("second",))]
    executor = LocalExecutor(2, tmp_path / "logs")
    try:
        failed, _, left = schedule(jobs, executor, deadline=time.perf_counter() + 1.0)  # "first" outlives it
        assert failed == [] and [j.label for j in left] == ["second", "third"]
        assert [e["event"] for e in events(record)["first"]] == ["start", "end"]  # it ran to its end
        # the next slice, as `pipeline.plan` builds it: what exists already is not waited for
        made = {name for j in left for name in j.makes}
        failed, _, left = schedule([replace(j, needs=tuple(n for n in j.needs if n in made)) for j in left], executor)
    finally:
        executor.close()
    assert failed == [] and left == [] and set(events(record)) == {"first", "second", "third"}


def in_namespace(script: str, timeout: int) -> subprocess.CompletedProcess:
    """Run a bash script in a fresh network namespace with only loopback up."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -n` (root): Ray must not bind the machine's interfaces in tests")
    return subprocess.run(
        ["unshare", "-n", "bash", "-c", f"set -e; ip link set lo up; {script}"],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def embedded_ray_run(tmp_path_factory) -> Path:
    """tests/ray_check.py's two plans on one embedded Ray that declares one GPU; the folder of what they recorded."""
    pytest.importorskip("ray")
    out = tmp_path_factory.mktemp("ray-check")
    proc = in_namespace(f"{sys.executable} -m tests.ray_check {out} --gpus 1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [] and summary["nodes"] == ["127.0.0.1"]
    return out


def test_ray_retries_a_job_whose_worker_was_killed_and_keeps_the_dependency_order(embedded_ray_run):
    seen = events(embedded_ray_run / "events.jsonl")
    assert [e["event"] for e in seen["student-a"]] == ["start", "start", "end"]  # killed once, retried, finished
    assert seen["student-a"][0]["pid"] != seen["student-a"][1]["pid"]
    assert all(len(seen[name]) == 2 for name in ("maps-a", "maps-b", "report"))  # nothing else ran twice
    end = {name: e[-1]["time"] for name, e in seen.items()}
    assert seen["student-a"][0]["time"] < end["maps-b"]  # started before the other extraction ended
    assert seen["report"][0]["time"] >= max(end["student-a"], end["maps-b"])


def test_ray_packs_small_trainings_onto_one_gpu_and_gives_a_teacher_a_whole_one(embedded_ray_run):
    """Several small trainings per GPU (#21): on a Ray node with one GPU, four jobs asking for a 0.25 share run at
    the same time on device 0 (each waits for the other three), and the teacher's whole-GPU job runs alone."""
    students = events(embedded_ray_run / "students.jsonl")
    teacher = events(embedded_ray_run / "teacher.jsonl")["teacher"]
    assert len(students) == 4 and all(e[0]["cuda_visible_devices"] == "0" for e in [*students.values(), teacher])
    assert all([e["event"] for e in seen] == ["start", "end"] for seen in students.values())
    alone = (teacher[0]["time"], teacher[-1]["time"])
    assert all(alone[1] <= e[0]["time"] or e[-1]["time"] <= alone[0] for e in students.values())


RAY = Path(sys.executable).parent / "ray"  # the CLI of the Ray installed beside this interpreter
# Token authentication off: this cluster lives in a network namespace of its own (and Ray >= 2.59 would turn it on
# for `ray start --head` wherever an earlier local Ray left a token in ~/.ray).
RAY_CLUSTER = """
export RAY_AUTH_MODE=disabled
trap '{ray} stop --force >/dev/null 2>&1' EXIT
{ray} start --head --node-ip-address=127.0.0.1 --port=6380 --num-cpus=1 --include-dashboard=false \
    --disable-usage-stats --temp-dir={temp}
{ray} start --address=127.0.0.1:6380 --node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats
"""


def rows_by_key(root: Path) -> dict[tuple, dict]:
    rows = [json.loads(line) for line in (root / "results" / "results.jsonl").read_text().splitlines()]
    return {(r["student"], r["split"], r["protocol"]): r for r in rows}


def map_fingerprints(root: Path) -> dict[str, dict]:
    """Per config and split: the extraction's fingerprint without its paths (the teacher's weights are in it as a
    digest), the row count and the map-scale statistics; and the maps themselves."""
    import pyarrow.parquet as pq

    dataset = root / "hub" / "datasets" / "agkd-attributions"
    out = {}
    for path in sorted((dataset / "meta").glob("*.json")):
        for split, entry in json.loads(path.read_text())["splits"].items():
            fingerprint = {k: v for k, v in entry["fingerprint"].items() if k not in ("corpus", "teacher")}
            maps = (
                pq.read_table(sorted((dataset / path.stem).glob(f"{split}*.parquet"))).column("attribution").to_pylist()
            )
            out[path.stem, split] = {
                "fingerprint": fingerprint,
                "rows": entry["rows"],
                "scale": entry["scale"],
                "maps": maps,
            }
    return out


@pytest.mark.slow
def test_smoke_grid_on_a_two_node_ray_cluster_equals_the_local_run_with_a_worker_killed_mid_student(tmp_path):
    """The smoke preset on a real two-node Ray cluster (head plus a second node, one CPU each, on loopback) gives
    the local executor's rows, to the digit, and the same maps, although the worker training one student is killed
    after its first checkpoint: Ray retries the task, which resumes from that checkpoint; nothing else runs twice."""
    import os
    import re
    import signal
    import threading
    import time

    pytest.importorskip("ray")
    single_thread = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the same arithmetic everywhere
    local = tmp_path / "local"
    command = [sys.executable, "-m", "agkd.training.cli", "pipeline", "--preset", "smoke"]
    done = subprocess.run([*command, "--runs_dir", str(local)], cwd=REPO, env=single_thread, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]

    distributed = tmp_path / "ray"
    victim = "student-marian-de-en-attention-add-rowsum-warm-s0"
    marker = distributed / "smoke" / "checkpoints" / victim / "checkpoints" / "checkpoint_0" / "checkpoint_complete"
    log = distributed / "smoke" / "logs" / "student-marian.de-en-attention-add-row-sum-s0.log"
    killed = []

    def kill_after_first_checkpoint():
        deadline = time.time() + 1500
        while time.time() < deadline and not marker.exists():
            time.sleep(0.01)
        if marker.exists():
            pid = int(re.search(r"started in process (\d+)", log.read_text()).group(1))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    watcher = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    watcher.start()
    pipeline = " ".join(
        [*command, "--runs_dir", str(distributed), "--executor", "ray", "--ray_address", "127.0.0.1:6380"]
    )
    temp = tempfile.mkdtemp(prefix="agkd-ray-", dir="/tmp")  # Ray's sockets need a short path
    try:
        cluster = RAY_CLUSTER.format(ray=RAY, temp=temp)
        proc = in_namespace(cluster + "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 " + pipeline, timeout=2400)
    finally:  # whatever `ray stop` left behind, found by its session folder
        subprocess.run(["pkill", "-9", "-f", temp], check=False)
        shutil.rmtree(temp, ignore_errors=True)
    watcher.join(timeout=5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert killed, "the student finished before its worker could be killed"
    victim_log = log.read_text()
    assert victim_log.count("started in process") == 2 and "resumed from" in victim_log
    others = [p for p in (distributed / "smoke" / "logs").glob("*.log") if p != log]
    assert others and all(p.read_text().count("started in process") == 1 for p in others)

    # (Whether a training overlaps another method's extraction here depends on Ray's queue: the smoke extractions
    # take 2 s each. The order itself is checked exactly by the two tests above.)
    expected, got = rows_by_key(local / "smoke"), rows_by_key(distributed / "smoke")
    assert expected.keys() == got.keys()
    metrics = ("bleu", "chrf", "nll_reference", "agreement_reference", "nll_teacher", "agreement_teacher")
    for key, row in expected.items():
        assert {m: row[m] for m in metrics} == {m: got[key][m] for m in metrics}, key
    assert map_fingerprints(local / "smoke") == map_fingerprints(distributed / "smoke")
