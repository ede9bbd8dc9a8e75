"""`agkd triangulate`'s faithfulness and sanity parts on the tiny Marian's maps (both target kinds, seeded subsets, the
per-sentence arrays in evaluation order, the table's columns), and its part cache, keyed by content (review M8): the
maps' extraction fingerprints, the teacher's weights and each part's module constants, beside the arguments."""

from __future__ import annotations

import json

import numpy as np

from agkd.training.triangulation import faithfulness, triangulate
from agkd.training.triangulation.triangulate import TriangulateArguments, Work, content_fingerprint, part_constants

pytest_plugins = ["tests.tiny_teachers", "tests.tiny_release"]  # tiny_marian_dir, tiny_attributions_dir


def test_faithfulness_and_sanity_parts_on_both_target_kinds(tiny_marian_dir, tiny_attributions_dir, tmp_path):
    import shutil

    attributions = shutil.copytree(tiny_attributions_dir, tmp_path / "attributions")  # its card gets the figures
    argv = ["--teacher", str(tiny_marian_dir), "--pair", "de-en", "--attributions", str(attributions),
            "--results_dir", str(tmp_path), "--parts", "faithfulness", "sanity", "--methods", "attention",
            "--faithfulness_pairs", "5", "--sanity_pairs", "3", "--sanity_stages", "decoder+encoder", "full"]
    assert triangulate.main(argv) == 0
    summary = json.loads((tmp_path / "triangulation" / "marian.de-en.json").read_text())
    part = summary["faithfulness"]
    assert part["target_kinds"] == ["reference", "teacher"] and part["removals"] == ["unk", "mask"]
    positions = part["positions"]["reference"]
    assert len(positions) == 5 and positions == sorted(positions) and positions != list(range(5))  # seeded sample
    row = summary["table"]["attention"]
    for key in ("aopc_deletion", "aopc_deletion_mask", "aopc_deletion_teacher", "aopc_insertion_teacher_mask"):
        assert np.isfinite(row[key]), key
    assert row["sanity_verdict"] in ("passes", "fails", "undetermined")
    assert {"sanity_spearman_decision", "sanity_spearman_full", "sanity_degenerate_share"} <= set(row)
    with np.load(tmp_path / "triangulation" / "marian.de-en.npz") as arrays:
        values = arrays["aopc_deletion.attention"]
        assert np.isfinite(values[positions]).all() and np.isnan(np.delete(values, positions)).all()
        assert np.isfinite(arrays["aopc_deletion_teacher_mask.attention"]).sum() == part["teacher_pairs"]
        sanity = arrays["sanity.decoder+encoder.attention"]
        assert np.isfinite(sanity).sum() == 3
        assert np.isfinite(sanity[summary["sanity"]["positions"]]).all()
    # the report's table reads the new columns
    from agkd.training.triangulation.table import figures_table

    table = "\n".join(figures_table(summary, {}))
    assert "teacher's output, masked" in table and "randomisation Spearman (decoder+encoder)" in table
    card = (attributions / "README.md").read_text()
    assert "AOPC del. / ins., teacher's output" in card
    assert f"| `marian.de-en.attention` | - | - | {row['aopc_deletion']:.3f} |" in card


def _attributions(root, fingerprint: str):
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "marian.de-en.saliency.json").write_text(
        json.dumps({"splits": {"test": {"fingerprint": {"teacher_sha256": fingerprint}}}}))
    return root


def _teacher(root, weights: bytes):
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_a_part_is_reused_only_while_its_inputs_and_constants_are_the_same(tmp_path, monkeypatch):
    def work(attributions, teacher, parts=None):
        args = TriangulateArguments(teacher=str(teacher), pair="de-en", results_dir=str(tmp_path),
                                    attributions=str(attributions))
        content = content_fingerprint(args, ["marian.de-en.saliency"])
        return Work(tmp_path, "marian.de-en", {"args": "same", **content}, parts or part_constants())

    maps, teacher = _attributions(tmp_path / "a", "aaa"), _teacher(tmp_path / "t1", b"weights")
    work(maps, teacher).put("faithfulness", {"value": 1})
    assert work(maps, teacher).get("faithfulness")["value"] == 1
    assert work(_attributions(tmp_path / "b", "bbb"), teacher).get("faithfulness") is None  # maps re-extracted
    assert work(maps, _teacher(tmp_path / "t2", b"retrained")).get("faithfulness") is None  # another teacher
    monkeypatch.setattr(faithfulness, "FRACTIONS", (0.1, 0.5))  # a changed rule of this part ...
    assert work(maps, teacher).get("faithfulness") is None
    work(maps, teacher).put("sanity", {"value": 2})
    monkeypatch.setattr(faithfulness, "REMOVALS", ("unk",))
    assert work(maps, teacher).get("sanity")["value"] == 2  # ... leaves the other parts' results valid


def test_a_release_copied_elsewhere_keeps_its_finished_parts(tmp_path):
    """The folders stand in by their content: the same maps, teacher and corpus under other paths match, another
    corpus does not."""
    import shutil

    def fingerprint(root):
        args = TriangulateArguments(teacher=str(root / "t"), pair="de-en", results_dir=str(root / "results"),
                                    attributions=str(root / "a"), corpus=str(root / "corpus"))
        return triangulate.run_fingerprint(args, ["saliency"], ["marian.de-en.saliency"])

    first = tmp_path / "runs" / "demo"
    _attributions(first / "a", "aaa"), _teacher(first / "t", b"weights")
    (first / "corpus" / "de-en").mkdir(parents=True)
    (first / "corpus" / "de-en" / "train.parquet").write_bytes(b"pairs")
    shutil.copytree(first, tmp_path / "runs" / "demo-power")
    assert fingerprint(first) == fingerprint(tmp_path / "runs" / "demo-power")
    (tmp_path / "runs" / "demo-power" / "corpus" / "de-en" / "train.parquet").write_bytes(b"other pairs")
    assert fingerprint(first) != fingerprint(tmp_path / "runs" / "demo-power")


def test_the_table_reads_results_written_under_the_earlier_rules():
    """A results file of 2026-12-02 (sanity decided at `full`, `sanity_fails`) still renders: its verdict cells are
    empty and a note says to re-run, rather than a crash or an old figure under a new column."""
    from agkd.training.triangulation.table import figures_table

    summary = {"table": {"saliency": {"silver_aer": 0.4, "aopc_deletion": 1.5, "aopc_insertion": 1.4,
                                      "sanity_spearman": 0.09, "sanity_fails": False}},
               "faithfulness": {"configs": {}, "pairs": 50},
               "sanity": {"stages": ["decoder", "full"], "threshold": 0.5, "pairs": 10, "methods": {}, "fails": {}}}
    table = "\n".join(figures_table(summary, {}))
    assert "| `saliency` | - | 0.400 | 1.500 | 1.400 | - | - | - | - |" in table
    assert "the first 50 evaluation pairs, measured under the earlier rules" in table and "earlier rule (" in table
