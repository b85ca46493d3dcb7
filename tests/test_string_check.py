"""`string_check` (§6, U15–U17)."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

import graders
from graders import Options


def check(operation, input_text, reference, **opts):
    grader = {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}", "reference": "{{ item.ref }}", "operation": operation}
    options = Options().with_values(opts) if opts else None
    return graders.run(grader, input_text, {"ref": reference}, options=options).reward


@pytest.mark.parametrize(
    ("operation", "input_text", "reference", "expected"),
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "Paris", "paris", 0.0),
        ("eq", "Paris ", "Paris", 0.0),
        ("eq", "", "", 1.0),
        ("ne", "Paris", "paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "The capital is Paris.", "Paris", 1.0),
        ("like", "The capital is paris.", "Paris", 0.0),
        ("like", "anything", "", 1.0),
        ("ilike", "The capital is PARIS.", "paris", 1.0),
        ("ilike", "Lyon", "paris", 0.0),
        ("like", "100% sure", "100%", 1.0),
        ("like", "a_b", "a_b", 1.0),
        ("like", "axb", "a_b", 0.0),
        ("eq", "\u00e9", "e\u0301", 0.0),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_operations_exact_no_trimming_no_normalisation(operation, input_text, reference, expected):
    """§6: case-sensitive eq/ne/like, case-insensitive ilike, `%`/`_` literal (U15), no NFC (é vs e+◌́)."""
    assert check(operation, input_text, reference) == expected


def test_result_is_exactly_float_zero_or_one():
    reward = check("eq", "a", "a")
    assert reward == 1.0 and type(reward) is float


def test_like_wildcards_switch_U15():
    assert check("like", "axxb", "a%b", **{"string_check.like_wildcards": True}) == 1.0
    assert check("like", "axb", "a_b", **{"string_check.like_wildcards": True}) == 1.0
    assert check("ilike", "AXB", "a_b", **{"string_check.like_wildcards": True}) == 1.0
    assert check("like", "a.b", "a.b", **{"string_check.like_wildcards": True}) == 1.0
    assert check("like", "axb", "a.b", **{"string_check.like_wildcards": True}) == 0.0


def test_ilike_folding_switch_U16():
    assert check("ilike", "STRASSE", "straße") == 0.0
    assert check("ilike", "STRASSE", "straße", **{"string_check.ilike_fold": "casefold"}) == 1.0


def test_missing_reference_value_is_invalid_variable():
    grader = {"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.ref }}", "operation": "eq"}
    resp = graders.run(grader, "x", {})
    assert resp.reward == 0.0
    assert resp.errors["invalid_variable_error"] is True
    assert "item.ref" in resp.errors["invalid_variable_error_details"]


def test_huge_strings():
    big = "x" * 2_000_000
    assert check("like", big + "needle" + big, "needle") == 1.0


def _like_by_regex(text: str, reference: str) -> bool:
    """The U15 rule written as a regular expression: the slow, backtracking oracle for small cases."""
    import re

    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in reference)
    return re.search(body, text, re.S) is not None


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.text(alphabet="ab%_", max_size=8), st.text(alphabet="abc", max_size=12))
def test_like_wildcard_matcher_agrees_with_the_regex_rule_U15(reference, text):
    from graders.evaluators.string_check import like_matcher

    assert like_matcher(reference)(text) == _like_by_regex(text, reference)


def test_like_wildcards_cost_is_linear_in_the_input_U15():
    """`%a%a%a%ab` against 200 characters took 11 s as a backtracking regex; a megabyte now takes well under one."""
    import time

    opts = {"string_check.like_wildcards": True}
    start = time.perf_counter()
    assert check("like", "a" * 200, "%a" * 4 + "b", **opts) == 0.0
    assert check("like", "a" * 1_000_000, "%a" * 50 + "b", **opts) == 0.0
    assert check("like", "a" * 1_000_000, "a_" * 40 + "b", **opts) == 0.0
    assert check("like", "a" * 1_000_000 + "b", "%a_a" * 30 + "b", **opts) == 1.0
    assert time.perf_counter() - start < 5.0
