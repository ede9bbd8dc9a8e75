"""The teacher registry: the ONE place that names the language pairs, the teacher families and their mBART language
codes, and maps (family, pair) to a model, local or on the Hub. Every stage that needs a teacher (the teacher
training in `training/train_teacher.py`, the extraction, the students, the Space) reads it from here.

Two families explain translations into English:

- `marian`: one MarianMT model per pair. Online: `Helsinki-NLP/opus-mt-{de,fr,ar}-en`. Here: the folder
  `<models_root>/teacher-marian-<pair>` written by `agkd teacher --family marian`.
- `mbart`: one multilingual mBART-50-style model for all pairs, with language codes (de_DE, fr_XX, ar_AR -> en_XX).
  Online: `facebook/mbart-large-50-many-to-many-mmt` (the translation fine-tune of `facebook/mbart-large-50`, which
  is only a denoising pre-trained model and does not translate). Here: `<models_root>/teacher-mbart`.

`load_teacher` returns a model and tokenizer ready to translate: for mBART it sets the tokenizer's
`src_lang`/`tgt_lang` and `generation_kwargs` forces the target language code as the first generated token.

    >>> from agkd.datasets_scripts.teachers import load_teacher, generation_kwargs
    >>> model, tok = load_teacher("mbart", "fr-en", "runs/demo/hub/models")   # or source="hub"
    >>> out = model.generate(**tok(["Bonjour."], return_tensors="pt"), **generation_kwargs("mbart", tok))
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

LANGUAGE_PAIRS = ("de-en", "fr-en", "ar-en")
TEACHER_FAMILIES = ("marian", "mbart")

# mBART-50 language codes of the languages AGKD uses.
MBART_LANG_CODES = {"de": "de_DE", "fr": "fr_XX", "ar": "ar_AR", "en": "en_XX"}

MBART_HUB_ID = "facebook/mbart-large-50-many-to-many-mmt"
MBART_BASE_HUB_ID = "facebook/mbart-large-50"


@dataclass(frozen=True)
class TeacherSpec:
    """Everything a stage needs to know about one teacher of one pair."""

    family: str
    pair: str
    hub_id: str  # the real public checkpoint for online use
    local_name: str  # folder name under `<preset root>/hub/models`
    src_lang: str | None = None  # tokenizer language codes (mBART only)
    tgt_lang: str | None = None


def check_family(family: str) -> str:
    if family not in TEACHER_FAMILIES:
        raise ValueError(f"unknown teacher family {family!r}; choose one of {', '.join(TEACHER_FAMILIES)}")
    return family


def check_pair(pair: str) -> str:
    if pair not in LANGUAGE_PAIRS:
        raise ValueError(f"unknown language pair {pair!r}; choose from {', '.join(LANGUAGE_PAIRS)}")
    return pair


def local_name(family: str) -> str:
    """Folder name pattern of a family's local teachers (`{pair}` is filled in for Marian)."""
    return {"marian": "teacher-marian-{pair}", "mbart": "teacher-mbart"}[check_family(family)]


def teacher_spec(family: str, pair: str) -> TeacherSpec:
    """The registry entry of `(family, pair)`; raises ValueError on an unknown family or pair."""
    check_family(family)
    src, tgt = check_pair(pair).split("-")
    if family == "marian":
        return TeacherSpec(family, pair, f"Helsinki-NLP/opus-mt-{src}-{tgt}", local_name(family).format(pair=pair))
    return TeacherSpec(
        family, pair, MBART_HUB_ID, local_name(family), src_lang=MBART_LANG_CODES[src], tgt_lang=MBART_LANG_CODES[tgt]
    )


def resolve_teacher(family: str, pair: str, source: str | Path | None = None) -> str:
    """Where to load the teacher from. `source` is one of:
    - `"hub"`: the real public checkpoint id;
    - a folder that holds the teacher itself (it has a config.json);
    - a models root (e.g. `runs/demo/hub/models`) that holds the registry's `local_name` folder;
    - None: `runs/demo/hub/models` if the teacher was trained there, else the Hub id."""
    spec = teacher_spec(family, pair)
    if source == "hub":
        return spec.hub_id
    if source is None:
        candidate = Path("runs/demo/hub/models") / spec.local_name
        return str(candidate) if (candidate / "config.json").exists() else spec.hub_id
    path = Path(source)
    if (path / "config.json").exists():
        return str(path)
    if (path / spec.local_name / "config.json").exists():
        return str(path / spec.local_name)
    if path.exists():
        raise FileNotFoundError(f"no {family} teacher for {pair} in {path} (expected {path / spec.local_name})")
    return str(source)  # a Hub id given explicitly


def load_tokenizer(family: str, pair: str, source: str | Path | None = None, **kwargs):
    """`AutoTokenizer` of the teacher; mBART tokenizers get the pair's `src_lang`/`tgt_lang`."""
    from transformers import AutoTokenizer

    spec = teacher_spec(family, pair)
    if spec.src_lang:
        kwargs = {"src_lang": spec.src_lang, "tgt_lang": spec.tgt_lang, **kwargs}
    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher(family, pair, source), **kwargs)
    if spec.src_lang:  # a saved tokenizer keeps the languages it was saved with: set them explicitly
        tokenizer.src_lang, tokenizer.tgt_lang = spec.src_lang, spec.tgt_lang
    return tokenizer


def load_teacher(family: str, pair: str, source: str | Path | None = None, **model_kwargs):
    """(model, tokenizer) of a teacher, loaded with plain `AutoModelForSeq2SeqLM`/`AutoTokenizer`."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(resolve_teacher(family, pair, source), **model_kwargs)
    return model, load_tokenizer(family, pair, source)


def generation_kwargs(family: str, tokenizer, pair: str | None = None) -> dict:
    """Extra `generate()` arguments: mBART must start the output with the target language code."""
    if check_family(family) == "mbart":
        tgt = tokenizer.tgt_lang if pair is None else teacher_spec(family, pair).tgt_lang
        return {"forced_bos_token_id": tokenizer.convert_tokens_to_ids(tgt)}
    return {}


__all__ = [
    "LANGUAGE_PAIRS",
    "MBART_BASE_HUB_ID",
    "MBART_HUB_ID",
    "MBART_LANG_CODES",
    "TEACHER_FAMILIES",
    "TeacherSpec",
    "check_family",
    "check_pair",
    "generation_kwargs",
    "load_teacher",
    "load_tokenizer",
    "local_name",
    "resolve_teacher",
    "teacher_spec",
]


_TEACHER_DIGESTS: dict[str, str] = {}


def teacher_digest(teacher: str) -> str:
    """sha256 of a local teacher folder's config and weights (a retrained teacher invalidates old shards); for a Hub
    id, the id itself."""
    if teacher not in _TEACHER_DIGESTS:
        path = Path(teacher)
        if not path.is_dir():
            _TEACHER_DIGESTS[teacher] = teacher
        else:
            h = hashlib.sha256()
            for f in sorted([*path.glob("*.safetensors"), *path.glob("*.bin"), path / "config.json"]):
                if f.is_file():
                    h.update(f.name.encode())
                    with open(f, "rb") as fh:
                        for block in iter(lambda: fh.read(1 << 24), b""):
                            h.update(block)
            _TEACHER_DIGESTS[teacher] = h.hexdigest()
    return _TEACHER_DIGESTS[teacher]
