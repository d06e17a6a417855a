"""The metadata filter language: parsing, its JSON form, and the errors that name the field."""

from __future__ import annotations

import json

import pytest

from sparsearch.errors import InputError
from sparsearch.filters import (
    And,
    Eq,
    Exists,
    FilterError,
    FlatEquals,
    In,
    Not,
    Or,
    Range,
    check_against,
    parse_filter,
)


def test_every_clause_parses_and_round_trips() -> None:
    spec = {"and": [
        {"field": "lang", "eq": "en"},
        {"field": "year", "gte": 2000, "lt": 2010},
        {"field": "tag", "in": ["a", "b"]},
        {"or": [{"field": "oa", "eq": True}, {"not": {"field": "doi", "exists": True}}]},
    ]}
    parsed = parse_filter(spec)
    assert parsed == And([Eq("lang", "en"), Range("year", gte=2000, lt=2010), In("tag", ["a", "b"]),
                          Or([Eq("oa", True), Not(Exists("doi", True))])])
    assert parsed.to_json() == spec
    assert parse_filter(json.dumps(spec)) == parsed  # the CLI's string form
    assert parse_filter(parsed) is parsed  # clauses built in Python pass through


def test_flat_form_and_empty_filters() -> None:
    assert parse_filter({"lang": "en", "year": 2001}) == FlatEquals((("lang", "en"), ("year", 2001)))
    assert parse_filter({"lang": "en"}).to_json() == {"lang": "en"}
    assert parse_filter(None) is None and parse_filter({}) is None
    # inside and/or, flat clauses are accepted too
    assert parse_filter({"or": [{"lang": "en"}, {"field": "lang", "eq": "fr"}]}) == Or(
        [FlatEquals((("lang", "en"),)), Eq("lang", "fr")])


@pytest.mark.parametrize("spec,field,words", [
    ({"field": "lang", "equals": "en"}, "lang", "unknown operator 'equals'"),
    ({"field": "year", "in": 2001}, "year", "'in' takes a list"),
    ({"field": "year", "gte": "2000"}, "year", "'gte' takes a number, not a string"),
    ({"field": "year", "gte": True}, "year", "'gte' takes a number, not a boolean"),
    ({"field": "year", "lt": float("nan")}, "year", "finite"),
    ({"field": "lang", "eq": ["en"]}, "lang", "use 'in'"),
    ({"field": "lang", "eq": None}, "lang", "'exists': false"),
    ({"field": "lang", "in": ["en", {"x": 1}]}, "lang", "'in' takes strings, numbers or booleans"),
    ({"field": "lang", "eq": "en", "in": ["fr"]}, "lang", "one operator per clause"),
    ({"field": "year", "eq": 1, "gte": 0}, "year", "one operator per clause"),
    ({"field": "doi", "exists": "yes"}, "doi", "true or false"),
    ({"field": "lang"}, "lang", "no operator"),
])
def test_malformed_clauses_name_their_field(spec: dict, field: str, words: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(spec)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert info.value.field == field
    assert f"filter field {field!r}" in str(info.value) and words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec,words", [
    ({"and": {"field": "a", "eq": 1}}, "'and' takes a list of clauses"),
    ({"or": []}, "'or' needs at least one clause"),
    ({"not": [{"field": "a", "eq": 1}]}, "'not' takes one clause"),
    ({"and": [{"field": "a", "eq": 1}], "b": 2}, "must be alone"),
    ({"field": 3, "eq": 1}, "'field' names a metadata field"),
    ({"and": [3]}, "a filter clause is a JSON object"),
    ({"and": [{}]}, "empty filter clause"),
    ([{"field": "a", "eq": 1}], "a filter is a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_malformed_structure(spec: object, words: str) -> None:
    with pytest.raises(FilterError, match=words.replace("(", r"\(")):
        parse_filter(spec)


def test_depth_and_size_are_bounded() -> None:
    deep: dict = {"field": "a", "eq": 1}
    for _ in range(40):
        deep = {"not": deep}
    with pytest.raises(FilterError, match="nests deeper"):
        parse_filter(deep)
    with pytest.raises(FilterError, match="more than"):
        parse_filter({"or": [{"field": "a", "eq": i} for i in range(2000)]})


def test_checks_against_the_data() -> None:
    kinds = {"lang": {"string"}, "year": {"number"}, "mixed": {"string", "number"}, "oa": {"boolean"}}
    check_against(parse_filter({"and": [{"field": "lang", "in": ["en", "fr"]}, {"field": "year", "gt": 3},
                                        {"field": "mixed", "eq": 1}, {"field": "mixed", "eq": "x"},
                                        {"field": "oa", "eq": False}]}), kinds, n_docs=10)
    for spec, field, words in [
        ({"field": "lang", "gte": 1}, "lang", "a range needs numbers, and this field holds strings"),
        ({"field": "year", "eq": "2001"}, "year", "'eq' compares a string (\"2001\"), and this field holds numbers"),
        ({"field": "oa", "in": [1]}, "oa", "holds booleans"),
        ({"not": {"field": "langs", "eq": "en"}}, "langs", "no document in this index has this field (fields: "),
    ]:
        with pytest.raises(FilterError) as info:
            check_against(parse_filter(spec), kinds, n_docs=10)
        assert info.value.field == field and words in str(info.value)
    # The flat form keeps its leniency; an empty collection knows no fields to check against.
    check_against(parse_filter({"langs": "en", "year": "x"}), kinds, n_docs=10)
    check_against(parse_filter({"field": "langs", "eq": "en"}), {}, n_docs=0)


def test_clauses_built_in_python_are_checked_too() -> None:
    with pytest.raises(FilterError, match="use 'in'"):
        Eq("lang", ["en"])
    with pytest.raises(FilterError, match="'in' takes a list"):
        In("tag", "a")
    with pytest.raises(FilterError, match="'gte' takes a number, not a boolean"):
        Range("year", gte=True)
    with pytest.raises(FilterError, match="at least one of gt, gte, lt, lte"):
        Range("year")
    with pytest.raises(FilterError, match="'and' takes filter clauses"):
        And([{"field": "a", "eq": 1}])
    with pytest.raises(FilterError, match="'field' names a metadata field"):
        Exists("")


def test_cache_keys_tell_booleans_from_numbers() -> None:
    from sparsearch.filters import cache_key

    assert Eq("f", True) == Eq("f", 1)  # Python's equality: not what a filter means
    assert cache_key(Eq("f", True)) != cache_key(Eq("f", 1))
    assert cache_key(Eq("f", 1)) == cache_key(Eq("f", 1.0)) == cache_key(In("f", [1]))
    assert cache_key(parse_filter({"f": True})) != cache_key(parse_filter({"f": 1}))
