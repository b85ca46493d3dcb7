"""`multi` graders (§11.3, §11.4, U40–U44)."""

from __future__ import annotations

import asyncio

import pytest

import graders
from graders import Options

EXACT = {"type": "string_check", "name": "exact_name", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
MENTIONS = {"type": "string_check", "name": "mentions_name", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "ilike"}
NEEDS_X = {"type": "string_check", "input": "{{ item.x }}", "reference": "a", "operation": "eq"}


def multi(formula, **graders_map):
    return {"type": "multi", "name": "m", "graders": graders_map, "calculate_output": formula}


def test_formula_combines_sub_rewards_and_reports_them_by_key_U42():
    resp = graders.run(multi("0.7 * exact + 0.3 * mentions", exact=EXACT, mentions=MENTIONS), "the answer is paris", {"answer": "Paris"})
    assert resp.reward == pytest.approx(0.3)
    assert resp.sub_rewards == {"exact": 0.0, "mentions": 1.0}
    assert resp.metadata["scores"] == resp.sub_rewards
    assert resp.type == "multi" and resp.name == "m"


def test_sub_rewards_by_name_switch_U42():
    opts = Options().with_values({"multi.sub_rewards_keys": "name"})
    resp = graders.run(multi("exact", exact=EXACT, other=NEEDS_X), "Paris", {"answer": "Paris", "x": "a"}, options=opts)
    assert list(resp.sub_rewards) == ["exact_name", "other"]


def test_failing_sub_grader_is_zero_and_formula_still_runs_U41():
    resp = graders.run(multi("exact + bad + 1", exact=EXACT, bad=NEEDS_X), "Paris", {"answer": "Paris"})
    assert resp.reward == 2.0
    assert resp.sub_rewards == {"exact": 1.0, "bad": 0.0}
    assert resp.errors["invalid_variable_error"] is True
    assert resp.errors["invalid_variable_error_details"].startswith("bad: {{ item.x }}")


def test_fail_whole_switch_U41():
    opts = Options().with_values({"multi.sub_error_policy": "fail_whole"})
    resp = graders.run(multi("exact + bad + 1", exact=EXACT, bad=NEEDS_X), "Paris", {"answer": "Paris"}, options=opts)
    assert resp.reward == 0.0 and resp.errors["invalid_variable_error"]


def test_details_of_several_failures_one_line_per_key_U43():
    resp = graders.run(multi("a + b", a=NEEDS_X, b={**NEEDS_X, "input": "{{ item.y }}"}), "s", {})
    lines = resp.errors["invalid_variable_error_details"].split("\n")
    assert [line.split(":")[0] for line in lines] == ["a", "b"]


@pytest.mark.parametrize("formula", ["exact / (exact - 1)", "sqrt(exact - 2)", "log(exact - 1)", "exp(exact * 1000)"])
def test_math_error_is_other_error_reward_zero_U40(formula):
    resp = graders.run(multi(formula, exact=EXACT), "Paris", {"answer": "Paris"})
    assert resp.reward == 0.0
    assert resp.errors["other_error"] is True and resp.errors["formula_parse_error"] is False
    assert resp.sub_rewards == {"exact": 1.0}
    assert "calculate_output" in resp.details["error"]


def test_math_error_flag_switch_U40():
    opts = Options().with_values({"formula.eval_error_flag": "formula_parse_error"})
    resp = graders.run(multi("1 / (exact - 1)", exact=EXACT), "Paris", {"answer": "Paris"}, options=opts)
    assert resp.errors["formula_parse_error"] is True and resp.errors["other_error"] is False


def test_no_final_clamping():
    """§11.3: a 0–5 scale average stays on its scale."""
    resp = graders.run(multi("5 * (exact + mentions)", exact=EXACT, mentions=MENTIONS), "Paris", {"answer": "Paris"})
    assert resp.reward == 10.0


def test_unavailable_sub_grader_type_is_a_clear_other_error(monkeypatch):
    """A type whose module is missing gives other_error naming it, never a fake score."""
    from graders import evaluators

    monkeypatch.setitem(evaluators.REGISTRY, "python", "graders.evaluators.not_a_module:Nothing")
    py = {"type": "python", "source": "def grade(s, i):\n    return 1.0\n"}
    resp = graders.run(multi("exact + py", exact=EXACT, py=py), "Paris", {"answer": "Paris"})
    assert resp.sub_rewards == {"exact": 1.0, "py": 0.0}
    assert resp.errors["other_error"] is True
    assert "grader type 'python' is not available" in resp.details["error"]


def test_multi_without_model_graders_has_null_usage():
    resp = graders.run(multi("exact", exact=EXACT), "Paris", {"answer": "Paris"})
    body = resp.model_dump()
    assert body["metadata"]["token_usage"] is None and body["metadata"]["sampled_model_name"] is None
    assert body["model_grader_token_usage_per_model"] == {}


def test_run_many_and_arun_agree_with_run():
    grader = graders.compile(multi("0.5 * exact + 0.5 * mentions", exact=EXACT, mentions=MENTIONS))
    rows = [{"model_sample": s, "item": {"answer": "Paris"}} for s in ["Paris", "paris!", "Rome", ""]]
    single = [grader.run(r["model_sample"], r["item"]).reward for r in rows]
    assert [r.reward for r in grader.run_many(rows)] == single == [1.0, 0.5, 0.0, 0.0]
    assert [r.reward for r in asyncio.run(grader.arun_many(rows))] == single
    assert asyncio.run(grader.arun("Paris", {"answer": "Paris"})).reward == 1.0
