"""The Porter stemmer as Lucene's ``PorterStemFilter`` applies it.

Porter (1980), "An algorithm for suffix stripping", in the form of Martin
Porter's reference implementations, which Lucene's stemmer derives from.  It
differs from the 1980 paper (and from Snowball's "porter", e.g. PyStemmer) in
three ways that change real tokens, all measured against Lucene on BEIR text
(docs/analyzer.md):

* words of one or two letters are left alone ("vs", "us", "ms" stay);
* step 2 rewrites "-bli" to "-ble" (the paper: only "-abli" to "-able"),
  so "possibly" -> "possibl";
* step 2 also rewrites "-logi" to "-log", so "etiology" -> "etiolog".

Written here (rather than taken from a package) because no maintained fast
package implements exactly this variant; results are cached per word by the
analyzer, so the Python cost is paid once per distinct token.
"""

from __future__ import annotations

_VOWELS = frozenset("aeiou")

_STEP2 = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP3 = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP4 = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "o": ("ion", "ou"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


def _cv(w: str) -> str:
    """Porter's consonant/vowel pattern of ``w``: 'v' for a, e, i, o, u and for y after a consonant."""
    out = []
    prev = "v"
    for ch in w:
        kind = "v" if ch in _VOWELS or (ch == "y" and prev == "c") else "c"
        out.append(kind)
        prev = kind
    return "".join(out)


def _measure(cv: str, end: int) -> int:
    """Porter's m: the number of vowel-run/consonant-run pairs in the first ``end`` letters."""
    return cv[:end].count("vc")


def _double_consonant(w: str, cv: str, i: int) -> bool:
    return i >= 1 and w[i] == w[i - 1] and cv[i] == "c"


def _cvc(w: str, cv: str, i: int) -> bool:
    """consonant-vowel-consonant ending at ``i``, the last not w, x or y ("hop", not "snow")."""
    return i >= 2 and cv[i - 2 : i + 1] == "cvc" and w[i] not in "wxy"


def _replace_if_measured(w: str, rules: tuple[tuple[str, str], ...], min_m: int) -> str:
    """The first rule whose suffix matches decides; it applies only if the stem's m > min_m."""
    for suffix, replacement in rules:
        if w.endswith(suffix):
            stem = len(w) - len(suffix)
            if _measure(_cv(w), stem) > min_m:
                return w[:stem] + replacement
            return w
    return w


def stem(word: str) -> str:
    """Stem one lower-cased token."""
    w = word
    if len(w) <= 2:
        return w
    # Step 1a: plurals.
    if w.endswith("s"):
        if w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("ies"):
            w = w[:-2]
        elif len(w) >= 2 and w[-2] != "s":
            w = w[:-1]
    # Step 1b: -eed, -ed, -ing.
    cv = _cv(w)
    if w.endswith("eed"):
        if _measure(cv, len(w) - 3) > 0:
            w = w[:-1]
    else:
        for suffix in ("ed", "ing"):
            if w.endswith(suffix) and "v" in cv[: len(w) - len(suffix)]:
                w = w[: -len(suffix)]
                cv = cv[: len(w)]
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif _double_consonant(w, cv, len(w) - 1):
                    if w[-1] not in "lsz":
                        w = w[:-1]
                elif _measure(cv, len(w)) == 1 and _cvc(w, cv, len(w) - 1):
                    w += "e"
                break
    # Step 1c: y -> i when the stem has a vowel.
    if w.endswith("y") and "v" in _cv(w)[:-1]:
        w = w[:-1] + "i"
    # Steps 2 and 3: map double suffixes to single ones.
    if len(w) >= 2 and w[-2] in _STEP2:
        w = _replace_if_measured(w, _STEP2[w[-2]], 0)
    if w and w[-1] in _STEP3:
        w = _replace_if_measured(w, _STEP3[w[-1]], 0)
    # Step 4: drop suffixes when m > 1.
    if len(w) >= 2 and w[-2] in _STEP4:
        for suffix in _STEP4[w[-2]]:
            if w.endswith(suffix):
                stem_end = len(w) - len(suffix)
                if suffix == "ion" and not (stem_end >= 1 and w[stem_end - 1] in "st"):
                    continue
                if _measure(_cv(w), stem_end) > 1:
                    w = w[:stem_end]
                break
    # Step 5a: final e.
    if w.endswith("e"):
        cv = _cv(w)
        m = _measure(cv, len(w) - 1)
        if m > 1 or (m == 1 and not _cvc(w, cv, len(w) - 2)):
            w = w[:-1]
    # Step 5b: -ll -> -l when m > 1.
    if w.endswith("ll") and _measure(_cv(w), len(w)) > 1:
        w = w[:-1]
    return w
