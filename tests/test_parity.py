"""Parity checks against recorded responses (the parity user's workflow)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

from graders import Options
from graders.parity import check_cases, compare

CASES = Path(__file__).resolve().parent.parent / "fixtures" / "parity" / "core_expectations.jsonl"


def load():
    return [json.loads(line) for line in CASES.read_text().splitlines()]


def test_recorded_expectations_match():
    report = check_cases(load())
    assert report.ok, report.summary()
    assert report.options["multi.sub_error_policy"] == "zero_and_continue"


def test_every_difference_is_explained():
    cases = load()
    broken = copy.deepcopy(cases[3])
    broken["response"]["reward"] = 0.5
    broken["response"]["sub_rewards"]["exact"] = 1.0
    broken["response"]["metadata"]["errors"]["other_error"] = True
    report = check_cases([broken])
    text = report.summary()
    assert not report.ok
    assert "reward: local 0.4" in text and "recorded 0.5" in text
    assert "sub_rewards.exact: local 0.0, recorded 1.0" in text
    assert "metadata.errors.other_error: local False, recorded True" in text
    assert "multi.sub_error_policy='zero_and_continue'" in text


def test_option_flip_changes_the_verdict():
    """A recording made under a different policy matches once the option is flipped (U41)."""
    case = copy.deepcopy(load()[3])
    case["item"] = {}
    case["response"]["reward"] = 0.0
    case["response"]["sub_rewards"] = case["response"]["metadata"]["scores"] = {"exact": 0.0, "mentions": 0.0, "apology": 0.0}
    case["response"]["metadata"]["errors"]["invalid_variable_error"] = True
    case["response"]["metadata"]["errors"]["invalid_variable_error_details"] = "exact: …"
    assert not check_cases([case]).ok
    assert check_cases([case], Options().with_values({"multi.sub_error_policy": "fail_whole"})).ok


def test_execution_time_and_generated_names_are_not_compared():
    case = load()[0]
    local = check_cases([case])
    assert local.ok
    recorded = copy.deepcopy(case["response"])
    recorded["metadata"]["execution_time"] = 99.0
    recorded["metadata"]["name"] = "grader-AbCdEf123456"
    assert compare({**recorded, "metadata": {**recorded["metadata"], "execution_time": 0.1, "name": "grader-zzz"}}, recorded) == []


def test_unusable_cases_are_reported_not_raised():
    report = check_cases([{"grader": {"type": "nope"}, "response": {}}, {"oops": 1}, {"grader": {"type": "string_check"}, "model_sample": "x", "response": {"reward": 0}}])
    assert [c.ok for c in report.cases] == [False, False, False]
    assert "rejects this request" in report.cases[0].differences[0]


def test_token_usage_compared_by_shape():
    recorded = {"reward": 0.5, "metadata": {"token_usage": {"prompt_tokens": 1}}, "model_grader_token_usage_per_model": {"m": {}}}
    local = {"reward": 0.5, "metadata": {"token_usage": 7}, "model_grader_token_usage_per_model": {}}
    diffs = compare(local, recorded)
    assert any("token_usage: local is an integer, recorded is an object" in d for d in diffs)
    assert any("model_grader_token_usage_per_model" in d for d in diffs)


def test_flipping_options_names_the_value_that_agrees():
    """A recording made under another U19 scorer: the report tries each scorer and names the one that agrees."""
    grader = {"type": "text_similarity", "name": "f", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.5}
    request = {"grader": grader, "model_sample": "the mat the cat sat on", "item": {"r": "the cat sat on the mat"}}
    recorded = check_cases([{**request, "response": {"reward": 0.0}}], Options().with_values({"text_similarity.fuzzy_match.scorer": "wratio_dp"}), flip=False)
    assert recorded.cases[0].local_reward is not None
    case = {**request, "response": {"reward": recorded.cases[0].local_reward}}
    report = check_cases([case])
    [row] = report.cases
    assert not row.ok and "text_similarity.fuzzy_match.scorer='wratio_dp'" in row.agrees_with
    assert any(c.startswith("text_similarity.fuzzy_match.scorer='partial'") for c in row.changed_by)
    assert row.difference == abs(row.local_reward - row.recorded_reward) and report.max_difference == row.difference
    assert report.agreement == 0.0 and "agrees with: text_similarity.fuzzy_match.scorer='wratio', text_similarity.fuzzy_match.scorer='wratio_dp'" in report.summary()


def test_recorded_refusal_must_be_refused_locally_with_the_same_param():
    grader = {"type": "string_check", "input": 3, "reference": "x", "operation": "eq"}
    same = {"grader": grader, "model_sample": "x", "status": 400, "error": {"error": {"param": "input", "code": "invalid_type", "message": "…"}}}
    other = {**same, "error": {"error": {"param": "reference", "code": "invalid_type"}}}
    graded = {**same, "grader": {**grader, "input": "x"}}
    report = check_cases([same, other, graded], flip=False)
    assert [c.ok for c in report.cases] == [True, False, False]
    assert report.cases[1].differences == ["error.param: local 'input', recorded 'reference'"]
    assert "the local engine graded the request" in report.cases[2].differences[0]


def test_option_choices_are_read_from_the_option_types():
    from graders.parity import option_choices

    assert option_choices("multi.sub_error_policy") == ["zero_and_continue", "fail_whole"]
    assert option_choices("text_similarity.rouge.stemmer") == [False, True]
    assert option_choices("python.timeout_s") == [] and option_choices("no.such") == []


def test_a_case_line_that_is_not_json_is_unusable_input_exit_2(tmp_path, capsys):
    """A suite with a line missing would report agreement on the rest, so the run stops: exit 2, one line."""
    from graders.cli import main

    cases = tmp_path / "cases.jsonl"
    good = {"grader": {"type": "string_check", "input": "a", "reference": "a", "operation": "eq"}, "model_sample": "x", "response": {"reward": 1.0}}
    cases.write_text(json.dumps(good) + "\n{not json\n")
    out = io.StringIO()
    assert main(["parity", str(cases), "--json"], out=out) == 2 and out.getvalue() == ""
    err = capsys.readouterr().err
    assert err.strip().endswith("line 2 is not valid JSON: Expecting property name enclosed in double quotes at column 2")
    cases.write_text('{"grader": ')
    assert main(["parity", str(cases)], out=out) == 2
    assert "line 1 is not valid JSON: Expecting value at column 12" in capsys.readouterr().err
