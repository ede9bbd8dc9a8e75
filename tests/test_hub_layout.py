import datasets
import yaml

from agkd.datasets_scripts.release_layout import atomic_folder, split_counts


def test_toy_corpus_loads_offline(toy_corpus_dir):
    ds = datasets.load_dataset(str(toy_corpus_dir), "fr-en")
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].column_names == ["id", "source", "target", "origin"]
    assert split_counts(toy_corpus_dir)["de-en"] == {"test": 80, "train": 400, "validation": 40}


def test_card_configs_match_files(toy_corpus_dir):
    header = (toy_corpus_dir / "README.md").read_text().split("---")[1]
    configs = {c["config_name"] for c in yaml.safe_load(header)["configs"]}
    assert configs == {"de-en", "fr-en", "ar-en"}


def test_atomic_folder_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    try:
        with atomic_folder(target) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    with atomic_folder(target) as tmp:
        (tmp / "done.txt").write_text("x")
    assert (target / "done.txt").exists()
