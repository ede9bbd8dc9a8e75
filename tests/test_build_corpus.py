"""Tests for the agkd-parallel builder on tiny fixtures made here (no downloads)."""

from __future__ import annotations

import logging
import sqlite3
import struct
from pathlib import Path

import datasets
import pytest

from agkd.datasets_scripts import build_corpus as bc
from agkd.datasets_scripts import corpus_sources as cs
from agkd.datasets_scripts.corpus_sources import Pair
from agkd.datasets_scripts.release_layout import split_counts

# --------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------

# (book, chapter, verse) -> {version code: text}; books 1 and 2 train, 8 (Ruth) test, 29 (Joel) validation
VERSES = {
    (1, 1, 1): {
        "4": "In the beginning, God created the heavens and the earth.",
        "k": "In the beginning God created the heaven and the earth.",
        "e": "Im Anfang schuf Gott die Himmel und die Erde.",
        "s": "(1:1) Im Anfang schuf Gott den Himmel und die Erde.",
        "l": "Au commencement, Dieu créa les cieux et la terre.",
        "y": "في البدء خلق الله السموات والارض.",
    },
    (1, 1, 2): {
        "4": "The earth was formless and empty.",
        "k": "And the earth was without form, and void.",
        "e": "Und die Erde war wüst und leer.",
        "s": "Und die Erde war wüst und [ganz] leer.",
        "l": "La terre était informe et vide.",
        "y": "وكانت الارض خربة وخالية.",
    },
    # a train verse whose English (WEB) text equals a test verse: must not reach train
    (2, 3, 4): {
        "4": "Where you go, I will go.",
        "k": "Whither thou goest, I will go.",
        "e": "Wohin du gehst, will ich gehen, sagte sie.",
        "s": "Wo du hingehst, da gehe ich auch hin.",
        "l": "Où tu iras, j'irai, dit-elle.",
        "y": "حيثما ذهبت اذهب قالت.",
    },
    (8, 1, 16): {
        "4": "Where you go, I will go.",
        "k": "Whither thou goest, I will go; and where thou lodgest, I will lodge.",
        "e": "Wo du hingehst, will ich hingehen.",
        "s": "Wo du hingehst, da will auch ich hingehen.",
        "l": "Où tu iras j'irai, où tu demeureras je demeurerai.",
        "y": "حيثما ذهبت اذهب وحيثما بت ابيت.",
    },
    (29, 2, 28): {
        "4": "I will pour out my Spirit on all flesh.",
        "k": "I will pour out my spirit upon all flesh.",
        "e": "Ich werde meinen Geist ausgießen über alles Fleisch.",
        "s": "Ich will meinen Geist ausgießen über alles Fleisch.",
        "l": "Je répandrai mon esprit sur toute chair.",
        "y": "اني اسكب روحي على كل بشر.",
    },
}


def make_bible_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, cNumber INTEGER NOT "
        "NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL, PRIMARY KEY (bbName, bNumber, cNumber, vNumber))"
    )
    rows = [(v, b, c, n, t) for (b, c, n), texts in VERSES.items() for v, t in texts.items()]
    db.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)])
    db.commit()
    db.close()
    return path


def make_mo(path: Path, entries: dict[str, str]) -> Path:
    """Write a little-endian GNU .mo file (header entry included), as msgfmt would."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **entries}
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    orig_off, trans_off = 28, 28 + 8 * n
    data_off = trans_off + 8 * n
    blob, otab, ttab = b"", [], []
    for s in ids:
        otab.append((len(s), data_off + len(blob)))
        blob += s + b"\0"
    for s in strs:
        ttab.append((len(s), data_off + len(blob)))
        blob += s + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, orig_off, trans_off, 0, 0)
    tables = b"".join(struct.pack("<2I", *e) for e in otab) + b"".join(struct.pack("<2I", *e) for e in ttab)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + tables + blob)
    return path


TRANSLATION_EN = """\
Package: foo
Description-md5: 0123456789abcdef0123456789abcdef
Description-en: tool to convert image files between formats
 Foo converts image files between many formats. It keeps the colour profile
 of the original file.
 .
 Features:
  * batch conversion of whole folders
  * a preview of the result before saving
 .
 This package contains the command line program.

Package: bar
Description-md5: fedcba9876543210fedcba9876543210
Description-en: library for reading calendar data
 Bar reads calendar files.

Package: onlyen
Description-md5: 11111111111111111111111111111111
Description-en: package without any translation here
 Nothing to see.
"""

TRANSLATION_DE = """\
Package: foo
Description-md5: 0123456789abcdef0123456789abcdef
Description-de: Werkzeug zum Umwandeln von Bilddateien zwischen Formaten
 Foo wandelt Bilddateien zwischen vielen Formaten um. Es behält das
 Farbprofil der ursprünglichen Datei bei.
 .
 Funktionen:
  * Stapelumwandlung ganzer Ordner
  * eine Vorschau des Ergebnisses vor dem Speichern
 .
 Dieses Paket enthält das Kommandozeilenprogramm.

Package: bar
Description-md5: fedcba9876543210fedcba9876543210
Description-de: Bibliothek zum Lesen von Kalenderdaten
 Bar liest Kalenderdateien. Es ist schnell.
 .
 Ein zweiter Absatz, den es im Englischen nicht gibt.
"""


def load(folder: Path, config: str) -> datasets.DatasetDict:
    """load_dataset with a private cache: datasets keys the cache of a local folder by folder and config name only,
    so the shared cache would serve these fixtures for any later folder named agkd-parallel (and vice versa)."""
    return datasets.load_dataset(str(folder), config, cache_dir=str(folder.parent / "hf-cache"))


@pytest.fixture
def bible_db(tmp_path) -> Path:
    return make_bible_db(tmp_path / "bible.db")


@pytest.fixture
def bible_cache(tmp_path) -> Path:
    cache = tmp_path / "cache"
    (cache / "bible").mkdir(parents=True)
    make_bible_db(cache / "bible" / "bible.db")
    return cache


# --------------------------------------------------------------------------------------------------------------
# readers and alignment
# --------------------------------------------------------------------------------------------------------------


def test_bible_pairs_are_verse_aligned_and_cleaned(bible_db):
    pairs = list(cs.read_bible(bible_db, ["de", "ar"]))
    by_origin = {p.origin: p for p in pairs}
    # 5 verses x (2 German versions x 2 English versions + 1 Arabic x 2 English)
    assert len(pairs) == 5 * (2 * 2 + 1 * 2)
    p = by_origin["bible:1:1:1:4e"]
    assert (p.lang, p.source, p.target) == ("de", VERSES[1, 1, 1]["e"], VERSES[1, 1, 1]["4"])
    assert by_origin["bible:1:1:1:ks"].source == "Im Anfang schuf Gott den Himmel und die Erde."  # "(1:1)" stripped
    assert by_origin["bible:1:1:2:4s"].source == "Und die Erde war wüst und ganz leer."  # brackets removed
    assert by_origin["bible:29:2:28:ky"].target == VERSES[29, 2, 28]["k"]
    assert cs.bible_key("bible:29:2:28:ky") == (29, 2, 28, "k", "y")


def test_ddtp_aligns_descriptions_by_md5_paragraphs_and_sentences(tmp_path):
    (tmp_path / "en").write_text(TRANSLATION_EN)
    (tmp_path / "de").write_text(TRANSLATION_DE)
    pairs = list(cs.read_ddtp(tmp_path / "en", tmp_path / "de", "de"))
    got = {(p.source, p.target) for p in pairs}
    assert (
        "Werkzeug zum Umwandeln von Bilddateien zwischen Formaten",
        "tool to convert image files between formats",
    ) in got
    assert (
        "Foo wandelt Bilddateien zwischen vielen Formaten um.",
        "Foo converts image files between many formats.",
    ) in got
    assert (
        "Es behält das Farbprofil der ursprünglichen Datei bei.",
        "It keeps the colour profile of the original file.",
    ) in got
    assert ("Stapelumwandlung ganzer Ordner", "batch conversion of whole folders") in got  # bullet items are segments
    assert (
        "Dieses Paket enthält das Kommandozeilenprogramm.",
        "This package contains the command line program.",
    ) in got
    # bar: paragraph counts differ (2 vs 1) -> only the short description; onlyen has no translation
    assert {p.target for p in pairs if p.origin == "ddtp:bar"} == {"library for reading calendar data"}
    assert all(p.origin in ("ddtp:foo", "ddtp:bar") for p in pairs)


def test_gale_church_merges_a_split_sentence():
    src = ["Das ist der erste Satz.", "Der zweite Satz ist etwas länger,", "und er geht hier weiter."]
    tgt = ["This is the first sentence.", "The second sentence is a bit longer, and it continues here."]
    assert cs.align_sentences(src, tgt) == [
        (src[0], tgt[0]),
        (src[1] + " " + src[2], tgt[1]),
    ]


def test_mo_catalog_reader_skips_plurals_contexts_and_strips_mnemonics(tmp_path):
    root = tmp_path / "pkg"
    make_mo(
        root / "usr/share/locale/de/LC_MESSAGES/app.mo",
        {
            "_Open the selected file": "Die ausgewählte Datei ö_ffnen",
            "menu\x04Save the current document": "Das aktuelle Dokument speichern",
            "%d file\x00%d files": "%d Datei\x00%d Dateien",
            "Untranslated string here": "",
        },
    )
    make_mo(root / "usr/share/locale/ar/LC_MESSAGES/app.mo", {"Open the selected file": "افتح الملف المحدد"})
    make_mo(root / "usr/share/locale/de@hebrew/LC_MESSAGES/app.mo", {"Open the selected file": "x"})
    make_mo(root / "usr/share/locale/es/LC_MESSAGES/app.mo", {"Open the selected file": "Abrir"})
    assert cs.read_mo(root / "usr/share/locale/de/LC_MESSAGES/app.mo") == {
        "_Open the selected file": "Die ausgewählte Datei ö_ffnen",
        "Save the current document": "Das aktuelle Dokument speichern",
    }
    pairs = sorted(cs.read_catalogs(root, "pkg", ["de", "ar"]))
    assert pairs == [
        Pair("ar", "افتح الملف المحدد", "Open the selected file", "mo:pkg:app.mo"),
        Pair("de", "Das aktuelle Dokument speichern", "Save the current document", "mo:pkg:app.mo"),
        Pair("de", "Die ausgewählte Datei öffnen", "Open the selected file", "mo:pkg:app.mo"),
    ]


def test_chromium_pak_reader(tmp_path):
    def pak(path, resources):
        ids = sorted(resources)
        header = struct.pack("<IB3xHH", 5, 1, len(ids), 0)
        offset = len(header) + 6 * (len(ids) + 1)
        table, blob = b"", b""
        for rid in ids:
            table += struct.pack("<HI", rid, offset + len(blob))
            blob += resources[rid].encode()
        table += struct.pack("<HI", 0, offset + len(blob))
        path.write_bytes(header + table + blob)

    pak(tmp_path / "en-US.pak", {10: "Manage site settings", 11: "Show &downloads folder", 12: "only English"})
    pak(tmp_path / "fr.pak", {10: "Gérer les paramètres des sites", 11: "Afficher le &dossier"})
    assert sorted(cs.read_chromium(tmp_path / "en-US.pak", tmp_path / "fr.pak", "fr")) == [
        Pair("fr", "Afficher le dossier", "Show downloads folder", "chromium:11"),
        Pair("fr", "Gérer les paramètres des sites", "Manage site settings", "chromium:10"),
    ]


def test_lohelp_joins_on_paragraph_ids(tmp_path):
    page = "text/swriter/guide/a.html"
    for lang, body in {
        "en-US": '<h1 id="hd_id1">Inserting Tables</h1><p id="par_id2">Choose Table - Insert Table. Then click OK.</p>'
        '<p id="par_id3">Only in English.</p>',
        "de": '<p id="par_id2">Wählen Sie Tabelle - Tabelle einfügen. Klicken Sie dann auf OK.</p>'
        '<h1 id="hd_id1">Tabellen einfügen</h1>',
    }.items():
        (tmp_path / lang / page).parent.mkdir(parents=True)
        (tmp_path / lang / page).write_text(f"<html><body>{body}</body></html>")
    pairs = sorted(cs.read_lohelp(tmp_path / "en-US", tmp_path / "de", "de"))
    assert [(p.source, p.target) for p in pairs] == [
        ("Klicken Sie dann auf OK.", "Then click OK."),
        ("Tabellen einfügen", "Inserting Tables"),
        ("Wählen Sie Tabelle - Tabelle einfügen.", "Choose Table - Insert Table."),
    ]
    assert {p.origin for p in pairs} == {f"lohelp:{page}"}


def test_handbook_aligns_pages_with_the_same_block_structure(tmp_path):
    pages = {
        "en-US": {
            "a.html": "<h2>Installing Debian</h2><p>Debian is installed from a USB key. It takes an hour.</p>"
            "<pre>apt install foo</pre><ul><li><p>Choose the language of the installer.</p></li></ul>",
            "b.html": "<p>One block.</p><p>Another block.</p>",
        },
        "fr-FR": {
            "a.html": "<h2>Installer Debian</h2><p>Debian s'installe depuis une clé USB. Cela prend une heure.</p>"
            "<pre>apt install foo</pre><ul><li><p>Choisissez la langue de l'installateur.</p></li></ul>",
            "b.html": "<p>Un seul bloc.</p>",  # different structure: the page is skipped
        },
    }
    for loc, files in pages.items():
        (tmp_path / loc).mkdir()
        for name, body in files.items():
            (tmp_path / loc / name).write_text(f"<html><body>{body}</body></html>")
    pairs = list(cs.read_handbook(tmp_path / "en-US", tmp_path / "fr-FR", "fr"))
    assert [(p.source, p.target) for p in pairs] == [
        ("Installer Debian", "Installing Debian"),
        ("Debian s'installe depuis une clé USB.", "Debian is installed from a USB key."),
        ("Cela prend une heure.", "It takes an hour."),
        ("Choisissez la langue de l'installateur.", "Choose the language of the installer."),
    ]
    assert {p.origin for p in pairs} == {"handbook:a.html"}
    assert bc.assign_split(pairs[0], "handbook") == "test_handbook"


def test_mediawiki_joins_json_messages_on_keys_and_skips_wikitext(tmp_path):
    import json

    i18n = tmp_path / "extensions/Foo/i18n"
    i18n.mkdir(parents=True)
    (i18n / "en.json").write_text(
        json.dumps(
            {
                "@metadata": {"authors": ["x"]},
                "foo-desc": "Adds a button to the toolbar.",
                "foo-link": "See [[Special:Foo]] for details.",
                "foo-only-en": "Not translated yet.",
            }
        )
    )
    (i18n / "ar.json").write_text(
        json.dumps(
            {
                "@metadata": {"authors": ["y"]},
                "foo-desc": "يضيف زرا إلى شريط الأدوات.",
                "foo-link": "انظر [[Special:Foo]] للتفاصيل.",
            }
        )
    )
    assert list(cs.read_mediawiki(tmp_path, ["ar", "de"])) == [
        Pair("ar", "يضيف زرا إلى شريط الأدوات.", "Adds a button to the toolbar.", "mediawiki:foo-desc")
    ]


# --------------------------------------------------------------------------------------------------------------
# filtering
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang,source,target,reason",
    [
        ("de", "Die Datei %s wurde gespeichert", "The file %s was saved", "placeholder"),
        ("de", "Datei {0} wurde gespeichert", "File {0} was saved", "placeholder"),
        ("fr", "Fichier %(name)s enregistré", "File %(name)s has been saved", "placeholder"),
        ("de", "Klicken Sie <b>hier</b> jetzt", "Click <b>here</b> right now", "placeholder"),
        ("de", "Siehe https://example.org für mehr", "See https://example.org for more", "placeholder"),
        ("ar", "يتعذّر على %PRODUCTNAME حفظ الملف", "%PRODUCTNAME cannot save the file", "placeholder"),
        ("de", "Die Option --verbose zeigt mehr", "The option --verbose shows more", "placeholder"),
        ("de", "Datei öffnen", "Open file", "short"),
        ("de", "Show the hidden files", "Show the hidden files", "untranslated"),
        ("fr", "Show the hidden files now", "Show the hidden files", "untranslated"),
        ("de", "Ja", "A rather long English sentence that has no short translation", "length_ratio"),
        ("ar", "Show the hidden files", "Show the hidden files", "untranslated"),
        ("ar", "ﺔﻴﻔﺨﻤﻟﺍ ﺕﺎﻔﻠﻤﻟﺍ ﺽﺮﻋ", "Show the hidden files", "arabic_preshaped"),
        ("de", "Versteckte Dateien anzeigen", "Show the hidden files", None),
        ("ar", "عرض الملفات المخفية", "Show the hidden files", None),
        ("fr", "Afficher les fichiers cachés", "Show the hidden files", None),
    ],
)
def test_reject_reason(lang, source, target, reason):
    assert cs.reject_reason(lang, source, target) == reason


def test_strip_mnemonics():
    assert cs.strip_mnemonics("_Open") == "Open"
    assert cs.strip_mnemonics("Save &As…") == "Save As…"
    assert cs.strip_mnemonics("~Print") == "Print"
    assert cs.strip_mnemonics("ال_قاع") == "القاع"
    assert cs.strip_mnemonics("Open (_O)") == "Open"
    assert cs.strip_mnemonics("Rock & Roll") == "Rock & Roll"


# --------------------------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------------------------


def test_splits_hold_out_books_and_share_no_side(bible_db):
    pairs = {"bible": list(cs.read_bible(bible_db, ["de", "fr", "ar"]))}
    # a non-Bible train pair that repeats a validation verse on the English side, and duplicates
    extra = [
        Pair("de", "Ich gieße meinen Geist aus.", "I will pour out my Spirit on all flesh!", "mo:x:x.mo"),
        Pair("de", "Gott schuf die Erde und den Himmel.", "God created the earth and the heaven.", "mo:x:x.mo"),
        Pair("de", "Gott schuf die Erde und den Himmel.", "God created the earth and the heaven.", "mo:y:y.mo"),
    ]
    pairs["catalogs"] = extra
    for lang in ("de", "fr", "ar"):
        splits, stats = bc.build_splits(lang, pairs)
        test, val, train = splits["test"], splits["validation"], splits["train"]
        # held-out books: canonical version pair only, and no verse of them in train
        assert [p.origin for p, _ in test] == [f"bible:8:1:16:4{next(iter(cs.BIBLE_VERSIONS[lang]))}"]
        assert [p.origin for p, _ in val] == [f"bible:29:2:28:4{next(iter(cs.BIBLE_VERSIONS[lang]))}"]
        held = set(bc.TEST_BOOKS) | set(bc.VALIDATION_BOOKS)
        assert train and all(cs.bible_key(p.origin) is None or cs.bible_key(p.origin)[0] not in held for p, _ in train)
        # no train pair shares a side with validation/test (the WEB text of 2:3:4 equals the test verse)
        eval_src = {bc.side_key(p.source) for p, _ in test + val}
        eval_tgt = {bc.side_key(p.target) for p, _ in test + val}
        assert not any(bc.side_key(p.source) in eval_src or bc.side_key(p.target) in eval_tgt for p, _ in train)
        assert not any(p.origin.startswith("bible:2:3:4:4") for p, _ in train)
        assert any(p.origin.startswith("bible:2:3:4:k") for p, _ in train)
        # deduplicated
        keys = [(bc.side_key(p.source), bc.side_key(p.target)) for p, _ in train]
        assert len(keys) == len(set(keys))
        if lang == "de":
            assert [p.origin for p, n in train if n == "catalogs"] == ["mo:x:x.mo"]
            assert stats.rejected["catalogs", "shares_side_with_eval"] == 1
            assert stats.rejected["catalogs", "duplicate"] == 1


def test_max_translations_per_english_sentence():
    pairs = [
        Pair("de", f"Übersetzung Nummer {i} des Satzes", "One English sentence here", f"mo:p{i}:a.mo") for i in range(5)
    ]
    splits, stats = bc.build_splits("de", {"catalogs": pairs}, max_translations=3)
    assert len(splits["train"]) == 3
    assert stats.rejected["catalogs", "too_many_translations"] == 2


# --------------------------------------------------------------------------------------------------------------
# end to end: Hub folder, card, load_dataset, re-runs, faults
# --------------------------------------------------------------------------------------------------------------


def test_lite_build_writes_a_loadable_hub_folder(tmp_path, bible_cache, caplog):
    out = tmp_path / "agkd-parallel"
    argv = ["--output_dir", str(out), "--cache_dir", str(bible_cache), "--lite", "--skip_download"]
    with caplog.at_level(logging.INFO):
        assert bc.main(argv) == 0
    for pair in ("de-en", "fr-en", "ar-en"):
        ds = load(out, pair)
        assert set(ds) == {"train", "validation", "test"}
        assert ds["train"].column_names == ["id", "source", "target", "origin"]
        assert ds["test"][0]["origin"].startswith("bible:8:1:16:4")
        assert len(set(ds["train"]["id"]) | set(ds["test"]["id"]) | set(ds["validation"]["id"])) == sum(
            len(d) for d in ds.values()
        )
    ds_de = load(out, "de-en")
    card = (out / "README.md").read_text()
    assert "config_name: de-en" in card and "| de-en | train | " in card and "public-domain" in card
    assert "counts per pair, split and source" in caplog.text
    # the pairs were cached; a re-run with the same options is skipped
    assert list((bible_cache / "pairs").glob("bible-*.parquet"))
    mtime = (out / "README.md").stat().st_mtime_ns
    assert bc.main(argv) == 0
    assert (out / "README.md").stat().st_mtime_ns == mtime
    # different options rebuild, from the cached pairs (the database is no longer needed)
    (bible_cache / "bible" / "bible.db").unlink()
    assert bc.main([*argv, "--max_translations", "1"]) == 0
    assert (out / "README.md").stat().st_mtime_ns != mtime
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ar-en", "de-en", "fr-en"]
    assert split_counts(out)["de-en"]["train"] < len(ds_de["train"])


def test_missing_source_is_skipped_unless_requested(tmp_path, bible_cache, caplog):
    out = tmp_path / "full"
    argv = ["--output_dir", str(out), "--cache_dir", str(bible_cache), "--skip_download", "--pairs", "de-en"]
    with caplog.at_level(logging.WARNING):
        assert bc.main(argv) == 0  # full mode: Debian sources are not in the cache, bible is
    assert "source 'ddtp' unavailable" in caplog.text
    assert "was requested but not available" in (out / "README.md").read_text()
    assert set(load(out, "de-en")) == {"train", "validation", "test"}

    out2 = tmp_path / "explicit"
    assert (
        bc.main(
            ["--output_dir", str(out2), "--cache_dir", str(bible_cache), "--skip_download", "--sources", "bible,ddtp"]
        )
        == 1
    )
    assert not out2.exists()


def test_interrupted_build_leaves_nothing_behind(tmp_path, bible_cache, monkeypatch):
    out = tmp_path / "agkd-parallel"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bc, "write_card", boom)  # build_corpus imports it at its top
    with pytest.raises(KeyboardInterrupt):
        bc.main(["--output_dir", str(out), "--cache_dir", str(bible_cache), "--lite", "--skip_download"])
    assert list(tmp_path.iterdir()) == [bible_cache]


def test_bad_options_are_refused(tmp_path):
    assert bc.main(["--output_dir", str(tmp_path / "o"), "--pairs", "es-en"]) == 2
    assert bc.main(["--output_dir", str(tmp_path / "o"), "--lite", "--sources", "ddtp"]) == 2
    assert not (tmp_path / "o").exists()
