"""`string_check` (spec §6, U15–U17)."""

from __future__ import annotations

import pytest

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
