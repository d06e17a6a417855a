"""The cached pure-Python WordPiece gives exactly the ids of ``tokenizers`` (or declines)."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from sparsearch.retriever import wordpiece_fast
from sparsearch.retriever.wordpiece_fast import FastWordPiece

# The decline table was checked against this Unicode database; elsewhere non-ASCII text is declined.
VERIFIED = unicodedata.unidata_version == wordpiece_fast.VERIFIED_UNIDATA_VERSION
needs_verified_unicode = pytest.mark.skipif(
    not VERIFIED, reason=f"Unicode {unicodedata.unidata_version}: re-check the decline table of wordpiece_fast "
                         "(test_every_code_point_in_context lists the code points that differ)")

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "inference-free-biomed" / "tokenizer.json"


@pytest.fixture(scope="module")
def bert_tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(SHIPPED))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def fast(bert_tokenizer: Tokenizer) -> FastWordPiece:
    """One instance for the tests below: its caches fill up as they run, which must not change anything."""
    wp = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert wp is not None
    return wp


def reference(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def beir_texts(data_root: Path, name: str) -> tuple[list[str], list[str]]:
    """Every query, and every document as ``title + " " + text`` (as the document encoders see it)."""
    with (data_root / "beir" / name / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f]
    with (data_root / "beir" / name / "corpus.jsonl").open(encoding="utf-8") as f:
        documents = [(lambda d: f"{d['title']} {d['text']}")(json.loads(line)) for line in f]
    return queries, documents


def test_equal_to_tokenizers_on_real_queries_and_documents(bert_tokenizer: Tokenizer, fast: FastWordPiece,
                                                           data_root: Path, data_is_real: bool) -> None:
    """All queries, the first 300 documents, and every document with a non-ASCII character."""
    texts: list[str] = []
    for name in ("scifact", "nfcorpus"):
        queries, documents = beir_texts(data_root, name)
        texts += queries + documents[:300] + [d for d in documents[300:] if not d.isascii()]
    references = [e.ids for e in bert_tokenizer.encode_batch(texts, add_special_tokens=False)]
    non_ascii = 0
    for text, expected in zip(texts, references):
        ids = fast.ids(text)
        if ids is None:
            assert not VERIFIED and not text.isascii()
            continue
        assert ids == expected, text
        non_ascii += not text.isascii()
    # The real sets hold 6,000+ such texts, 2,000+ of them non-ASCII; the synthetic stand-ins fewer.
    assert len(texts) > (6000 if data_is_real else 3000)
    assert non_ascii > (2000 if data_is_real else 300) or not VERIFIED  # none of these texts is declined


@needs_verified_unicode
def test_non_ascii_scifact_queries_take_the_fast_path(bert_tokenizer: Tokenizer, fast: FastWordPiece,
                                                      data_root: Path) -> None:
    queries = [q for q in beir_texts(data_root, "scifact")[0] if not q.isascii()]
    assert any("α" in q for q in queries)
    for query in queries:
        assert fast.ids(query) == reference(bert_tokenizer, query), query


@pytest.mark.parametrize("text", [
    "", "   \t\n  ", "hello_world foo-bar (baz)! #1 $2.50", "ctrl\x01chars\x0bjoin\x7fed", "tab\tand\nnewline\rcr",
    "x" * 101, "x" * 100, "qqqzzzxxx unmatchableword", "UPPER lower MiXeD", "a.b,c;d:e?f", "covid-19 il-6 p53",
    "[CLS] cells", "masked [MASK] word", "lower [cls] case", "[SEP]",
    "TNF-α and IFN-γ", "café [cls] Ünïcödé", "x\U0001fae8y [MASK]é",
])
def test_equal_to_tokenizers_on_edge_cases(bert_tokenizer: Tokenizer, text: str) -> None:
    """Through the query encoder: the fast path where it applies, ``tokenizers`` where it declines."""
    from sparsearch.retriever.inference_free import IdfQueryEncoder

    vocab = bert_tokenizer.get_vocab()
    encoder = IdfQueryEncoder(Tokenizer.from_str(bert_tokenizer.to_str()), {t: 1.0 for t in vocab})
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    got = fast.ids(text)
    assert got is None or got == reference(bert_tokenizer, text)
    specials = {i for i, t in bert_tokenizer.get_added_tokens_decoder().items() if t.special}
    expected = sorted({i for i in reference(bert_tokenizer, text) if i not in specials})
    assert encoder.encode([text]).term_ids.tolist() == expected


def test_declines_added_tokens_and_other_tokenizers(bert_tokenizer: Tokenizer) -> None:
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    assert fast.ids("café au lait") == reference(bert_tokenizer, "café au lait") or not VERIFIED
    assert fast.ids("the [CLS] token") is None  # added tokens are matched by tokenizers itself
    assert fast.ids("the [CLS] café") is None
    spec = json.loads(bert_tokenizer.to_str())
    spec["normalizer"]["lowercase"] = False  # a cased model: not the rules implemented here
    assert FastWordPiece.from_tokenizer(Tokenizer.from_str(json.dumps(spec))) is None
    spec = json.loads(bert_tokenizer.to_str())
    spec["added_tokens"][-1]["normalized"] = True  # matched after normalisation: not reproduced
    assert FastWordPiece.from_tokenizer(Tokenizer.from_str(json.dumps(spec))) is None
    spec = json.loads(bert_tokenizer.to_str())
    spec["normalizer"]["handle_chinese_chars"] = False  # CJK left inside words: ASCII text only
    no_cjk = FastWordPiece.from_tokenizer(Tokenizer.from_str(json.dumps(spec)))
    assert no_cjk is not None and no_cjk.ids("中文 text") is None and no_cjk.ids("text") == fast.ids("text")


def test_declines_non_ascii_on_an_unchecked_unicode_database(bert_tokenizer: Tokenizer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wordpiece_fast, "VERIFIED_UNIDATA_VERSION", "0.0.0")
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    assert fast.ids("café au lait") is None
    assert fast.ids("cafe au lait") == reference(bert_tokenizer, "cafe au lait")


def test_cache_does_not_change_results(bert_tokenizer: Tokenizer) -> None:
    fast = FastWordPiece.from_tokenizer(bert_tokenizer)
    assert fast is not None
    first = fast.ids("retrieval of retrieval models")
    assert fast.ids("retrieval of retrieval models") == first == reference(bert_tokenizer, "retrieval of retrieval models")


# Each string is checked against tokenizers; ``True`` marks the ones declined (``None``), with the reason.
TRICKY: list[tuple[str, bool]] = [
    ("café CAFÉ Café naïve façade São Paulo El Niño ÑANDÚ", False),
    ("Ångström Øresund Straße STRASSE ẞ ß œuvre Æsir", False),
    ("İstanbul İİ iİi DİYARBAKIR ıi ı I", False),  # İ: NFD gives I + U+0307, dropped before lower-casing
    ("TNF-α IFN-γ αvβ8 α-tocopheryl β2-microglobulin Δ9-THC μM Ω", False),
    ("ΟΔΟΣ ΣΟΦΙΑ σοφός ΑΣΣ Σ ς", False),  # tokenizers lower-cases Σ to σ even at the end of a word
    ("Ελληνικά ά ΐ ῷ ᾼ", False),
    ("Москва ЁЛКА ёлка Й й Ї ї", False),
    ("中文 mixed with English 中English文 COVID-19疫苗", False),
    ("日本語のテキスト カタカナ ｶﾀｶﾅ ガ ぱ", False),
    ("한국어 텍스트 한" + "한" * 32, False),  # 33 syllables = 99 jamo after NFD: one word
    ("한" * 34, False),  # 102 jamo: more than max_input_chars_per_word, [UNK]
    ("emoji 😀 x😀y 👍🏽 🇫🇷 ❤️ ☃ ™ © ° ± × ÷ € £ ¥ $5", False),  # symbols (S*) stay inside words
    ("family 👨\u200d👩\u200d👧 zw\u200bj no\u200djoin rtl\u200fmark bom\ufeffx", False),  # Cf is dropped
    ("non\u00a0breaking thin\u2009space ideo\u3000space line\u2028sep para\u2029sep nel\x85x", False),
    ("ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ，ｗｉｄｔｈ。punct！？（ａ）［ｂ］", False),
    ("，。！？、；：「」『』【】", False),
    ("em—dash en–dash ‘curly’ “quotes” «guillemets» …ellipsis ‰ • · ¿qué? ¡sí!", False),
    ("\u0301\u0308 \u0301 a\u0301\u0323 e\u0301 \u20dd\u20e3 ◌̃", False),  # marks alone, Me kept
    ("ﬁ ﬀ ℃ ℉ ² ³ ½ Ⅻ ⅻ ㎏ Ｋ \u212a \u212b \u2126", False),  # compatibility forms stay; K, Å, Ω signs decompose
    ("why\u037e not a\u1fefb c\u0387d", False),  # NFD makes ASCII ';' and '`' and '·': punctuation, split off
    ("\uf902\uf90a \U0002f800x 豈", False),  # CJK compatibility ideographs: NFD gives unified ones
    ("ctrl\x01\x1f\x7f\x80\x9f chars \ufffd repl\ufffdacement \x00nul", False),
    ("private \ue000 use \U000f0000 x", False),  # Co is dropped
    ("é" * 150 + " " + "é" * 100 + " " + "é" * 101, False),  # lengths are counted after normalisation
    ("\u0915\u094d\u0937 हिन्दी العربية עברית ภาษาไทย ქართული Ⴀ Ꭰꭰ", False),
    ("a\U0001d165b", True),  # musical stem: a spacing mark with a combining class (canonical ordering)
    ("x\U0001fae8y", True),  # unassigned in Unicode 14 (an emoji of Unicode 15)
    ("arabic \u0890 mark", True),  # a format character too new for tokenizers' tables (kept there)
    ("old\u2e43punct", True),  # punctuation too new for tokenizers' tables (not split there)
    ("[MASK] café", True),  # an added token: tokenizers matches it
]


@needs_verified_unicode
@pytest.mark.parametrize("text,declined", TRICKY)
def test_tricky_non_ascii(bert_tokenizer: Tokenizer, fast: FastWordPiece, text: str, declined: bool) -> None:
    got = fast.ids(text)
    assert (got is None) == declined
    if not declined:
        assert got == reference(bert_tokenizer, text)
        assert fast.ids(text) == got  # from the caches


def test_lone_surrogate_is_declined(bert_tokenizer: Tokenizer, fast: FastWordPiece) -> None:
    """tokenizers cannot take it (no UTF-8); declining keeps that behaviour for the caller."""
    assert fast.ids("a\ud800b") is None
    with pytest.raises(Exception):
        reference(bert_tokenizer, "a\ud800b")


@needs_verified_unicode
def test_every_code_point_in_context(bert_tokenizer: Tokenizer, fast: FastWordPiece) -> None:
    """Each assigned code point, inside and between words: equal or declined; declined only if unassigned or
    in the module's table.  A failure lists the code points that now differ (to update that table)."""
    assigned = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    texts = [f"a{c}b {c}{c}X{c}" for c in assigned]
    references = [e.ids for e in bert_tokenizer.encode_batch(texts, add_special_tokens=False)]
    wrong, declined = [], set()
    for char, text, expected in zip(assigned, texts, references):
        ids = fast.ids(text)
        if ids is None:
            declined.add(ord(char))
        elif ids != expected:
            wrong.append(hex(ord(char)))
    assert not wrong, f"differ from tokenizers: {wrong}"
    assert declined == {c for c in wordpiece_fast._UNVERIFIED if unicodedata.category(chr(c)) != "Cn"}
    assert len(assigned) - len(declined) > 280_000
    assert fast.ids("x\u0378y") is None  # unassigned


TRICKY_CHARS = "".join(t for t, _ in TRICKY) + "\t\n\r \u00a0\u200d\u0130\u03a3\u0345\u1e9e[]CLSMAK"
broad_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.lists(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY_CHARS),
                       st.sampled_from(["[CLS]", "[MASK]", "[cls]", " "])), max_size=40).map("".join),
)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=broad_text)
def test_random_unicode_equal_when_not_declined(bert_tokenizer: Tokenizer, fast: FastWordPiece, text: str) -> None:
    ids = fast.ids(text)
    if ids is not None:
        assert ids == reference(bert_tokenizer, text)


@needs_verified_unicode
def test_random_unicode_mostly_takes_the_fast_path(bert_tokenizer: Tokenizer, fast: FastWordPiece) -> None:
    """A fixed sample of random texts over all assigned characters (plus spaces and tricky characters)."""
    rng = random.Random(0)
    assigned = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    alphabet = assigned + list(TRICKY_CHARS) * 20 + [" "] * 20_000
    texts = ["".join(rng.choices(alphabet, k=rng.randint(1, 30))) for _ in range(2000)]
    references = [e.ids for e in bert_tokenizer.encode_batch(texts, add_special_tokens=False)]
    taken = 0
    for text, expected in zip(texts, references):
        ids = fast.ids(text)
        if ids is not None:
            assert ids == expected, text
            taken += 1
    assert taken > 0.9 * len(texts)
