"""`calculate_output` parser and evaluator (§11.2, §11.3, U39, U40), with a differential check against a
reference evaluator (Python's own arithmetic on the same tree), RapidFuzz-style."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from graders.formula import FormulaEvalError, FormulaParseError, parse_formula
from graders.options import Options

F = Options().formula


def value(source, env=None, **opts):
    options = Options().with_values({f"formula.{k}": v for k, v in opts.items()}).formula if opts else F
    return parse_formula(source, options, frozenset(env or {})).evaluate(env or {})


@pytest.mark.parametrize(
    ("source", "env", "expected"),
    [
        ("0.7 * exact + 0.3 * fuzzy", {"exact": 1.0, "fuzzy": 0.5}, 0.85),
        ("(a + b) / 2", {"a": 1.0, "b": 0.0}, 0.5),
        ("max(a, b) ^ 2", {"a": 0.5, "b": 0.25}, 0.25),
        ("-log(1 + abs(x))", {"x": math.e - 1}, -1.0),
        ("-2^2", {}, -4.0),
        ("2^3^2", {}, 512.0),
        ("2^-1", {}, 0.5),
        ("1 - 2 - 3", {}, -4.0),
        ("8 / 4 / 2", {}, 1.0),
        ("2 * 3 + 4 * 5", {}, 26.0),
        ("min(3)", {}, 3.0),
        ("min(3, 1, 2)", {}, 1.0),
        ("floor(2.7) + ceil(2.1)", {}, 5.0),
        ("sqrt(16) + exp(0)", {}, 5.0),
        (".5 + 1. + 1e1 + 2.5E-1", {}, 11.75),
        ("+a", {"a": 2.0}, 2.0),
        ("--a", {"a": 2.0}, 2.0),
        ("min + 1", {"min": 2.0}, 3.0),
    ],
)
def test_formula_values(source, env, expected):
    assert value(source, env) == pytest.approx(expected, rel=1e-15, abs=1e-15)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("a +", "expected"),
        ("(a", "')'"),
        ("a b", "an operator"),
        ("a ** 2", "'**'"),
        ("foo(a)", "unknown function"),
        ("b", "unknown variable"),
        ("abs(a, a)", "exactly 1 argument"),
        ("max()", "at least 1"),
        ("a > 1", "unexpected character"),
        ("a ? 1 : 0", "unexpected character"),
        ("pi", "unknown variable"),
        ("2x", "an operator"),
    ],
)
def test_parse_errors(source, message):
    with pytest.raises(FormulaParseError, match=re.escape(message)):
        parse_formula(source, F, frozenset({"a"}))


@pytest.mark.parametrize(
    "source",
    ["a / 0", "sqrt(-1)", "log(0)", "log(-1)", "exp(1000)", "10 ^ 400", "(-8) ^ (1/3)", "0 ^ -1", "1e308 * 10", "floor(1e308*10)"],
)
def test_math_errors_raise_U40(source):
    with pytest.raises(FormulaEvalError):
        value(source, {"a": 1.0})


def test_division_by_zero_ieee_switch_U40():
    assert value("1 / (1 / 0)", division_by_zero="ieee") == 0.0
    with pytest.raises(FormulaEvalError, match="not finite"):
        value("1 / 0", division_by_zero="ieee")


def test_grammar_switches_U39():
    assert value("2^3^2", power_assoc="left") == 64.0
    assert value("2^-1", power_assoc="left") == 0.5
    assert value("log(100)", log_base="10") == 2.0
    with pytest.raises(FormulaParseError):
        parse_formula("-1", Options().with_values({"formula.unary": False}).formula)
    with pytest.raises(FormulaParseError):
        parse_formula("min(1)", Options().with_values({"formula.minmax_min_args": 2}).formula)


def test_parser_never_evaluates_python():
    with pytest.raises(FormulaParseError):
        parse_formula("__import__('os').system('true')", F)


def test_long_formula_is_fine():
    source = " + ".join(["a"] * 20000)
    assert value(source, {"a": 0.5}) == 10000.0


def test_deep_nesting_is_a_parse_error_not_a_crash():
    with pytest.raises(FormulaParseError, match="nested too deeply"):
        parse_formula("(" * 5000 + "1" + ")" * 5000, F)


# --- differential: the compiled closures against Python's arithmetic on the same expression -----------------------

NAMES = ("a", "b", "c")
ENV = {"a": 0.25, "b": 1.5, "c": -2.0}


def _exprs() -> st.SearchStrategy[str]:
    # Float literals only: the oracle would otherwise compute huge integer powers (9 ** 9 ** 9) exactly.
    leaf = st.one_of(st.sampled_from(NAMES), st.integers(0, 9).map(lambda i: f"{i}.0"), st.sampled_from(["0.5", "1.25", "3."]))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            st.tuples(st.sampled_from(["min", "max"]), st.lists(inner, min_size=1, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(st.sampled_from(["abs", "floor", "ceil"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        )

    return st.recursive(leaf, extend, max_leaves=8)


def _real_abs(x: float) -> float:
    """`abs` that refuses a complex argument: Python's `(-2.0) ** 0.25` is complex where §11.3 has no value."""
    if isinstance(x, complex):
        raise ValueError("complex intermediate")
    return abs(x)


def _reference(source: str) -> float | None:
    """Python's own grammar agrees with §11.2 once `^` is `**`: right-assoc, binds tighter than unary minus."""
    namespace = {"min": lambda *xs: min(xs), "max": lambda *xs: max(xs), "abs": _real_abs, "floor": lambda x: float(math.floor(x)), "ceil": lambda x: float(math.ceil(x)), **ENV}
    try:
        result = eval(source.replace("^", "**"), {"__builtins__": {}}, namespace)  # noqa: S307 - test oracle on generated input
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    if isinstance(result, complex) or not math.isfinite(result):
        return None
    return float(result)


@settings(max_examples=1500, deadline=None)
@given(_exprs())
@example("--abs(c ^ a)")
def test_compiled_formula_agrees_with_reference(source):
    expected = _reference(source)
    formula = parse_formula(source, F, frozenset(NAMES))
    if expected is None:
        with pytest.raises(FormulaEvalError):
            formula.evaluate(ENV)
    else:
        assert formula.evaluate(ENV) == pytest.approx(expected, rel=1e-12, abs=1e-300)
