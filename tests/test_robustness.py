"""Results that stay put, and no crash or hang on hostile input (§3.2, §5.7, the size limits of each grader type).

Every case here was once a crash, a hang or a leak: a caller's change to one response showing up in the next, a
RecursionError on deep JSON, text that is not valid Unicode graded as if it were, a NaN becoming `null`, a grade
costing minutes. Each must be a clear, flagged result for its own row, or a clear 400 for a bad config.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

import graders
from graders import GraderValidationError, Options
from servers.chat_server import RunningServer

SC = {"type": "string_check", "name": "sc", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "operation": "eq"}
TS = {"type": "text_similarity", "name": "ts", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "evaluation_metric": "fuzzy_match"}
PY = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    print('seen')\n    return 0.5 if item['a'] == 'x' else 1.0\n"}
MULTI = {"type": "multi", "name": "m", "graders": {"s": SC, "t": TS}, "calculate_output": "s + t"}
SCORE = {"type": "score_model", "name": "judge", "model": "judge", "input": [{"role": "user", "content": "{{ sample.output_text }} {{ item.a }} #script {\"result\": 0.75}"}]}


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


TIMINGS = {"execution_time", "latency_s", "wait_s"}


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def wire(resp: graders.GraderRunResponse) -> dict[str, Any]:
    """Everything a response holds, as plain JSON, without the timings (a judge's latency too) that differ between runs."""
    return _untimed(resp.model_dump(mode="json", include_details=True))


def vandalise(resp: graders.GraderRunResponse) -> None:
    """Change every public part of a response a caller can reach, the way a caller would."""
    resp.reward = 123.0
    resp.errors["other_error"] = True
    resp.sub_rewards["s"] = 9.0
    resp.metadata["errors"]["other_error"] = True
    for per_model in resp.model_grader_token_usage_per_model.values():
        per_model["total_tokens"] = -1
    with pytest.raises(AttributeError):
        resp.outcome.score = 0.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        resp.outcome.details = {}  # type: ignore[misc]
    for container in (resp.details, resp.outcome.errors, resp.outcome.sub_rewards, resp.outcome.usage):
        if container:
            with pytest.raises(TypeError):
                container["other_error"] = True
            with pytest.raises(TypeError):
                container.clear()
    for value in resp.details.values():  # nested parts too: details["metric"], details["sub_graders"][k], lists
        if isinstance(value, dict):
            with pytest.raises(TypeError):
                value["scorer"] = "vandalised"
            for inner in value.values():
                if isinstance(inner, dict):
                    with pytest.raises(TypeError):
                        inner.update(x=1)
        elif isinstance(value, list):
            with pytest.raises(TypeError):
                value.append("vandalised")
    for usage in (resp.outcome.usage or {}).values():
        with pytest.raises(TypeError):
            usage["total_tokens"] = 0


@pytest.fixture(scope="module")
def chat() -> Any:
    with RunningServer() as srv:
        yield srv


@pytest.mark.parametrize("grader", [SC, TS, PY, MULTI, SCORE], ids=["string_check", "text_similarity", "python", "multi", "score_model"])
@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
def test_a_response_a_caller_changes_never_changes_later_responses(grader, explain, chat):
    """Shared pass/fail outcomes, one details dict per grader, a pool failure shared by a batch: a caller who
    writes into any of them must change only what they hold, never the next response of the same grader."""
    options = Options().with_values({"explain": explain, "models.base_url": chat.base_url, "models.max_retries": 0})
    rows = [{"model_sample": "x", "item": {"a": "x"}}, {"model_sample": "x", "item": {"a": "y"}}, {"model_sample": "x", "item": {}}]
    with graders.compile(grader, options) as compiled:
        first = [compiled.run(r["model_sample"], r["item"]) for r in rows] + compiled.run_many(rows)
        expected = [wire(r) for r in first]
        for resp in first:
            vandalise(resp)
        again = [compiled.run(r["model_sample"], r["item"]) for r in rows] + compiled.run_many(rows)
        assert [wire(r) for r in again] == expected
    assert any(r.details for r in again) and any(r.failed for r in again)


def test_outcomes_copy_and_pickle_as_plain_values():
    import pickle

    resp = graders.run(TS, "x", {"a": "y"}, options=Options().with_values({"explain": True}))
    clone = pickle.loads(pickle.dumps(resp.outcome))
    assert clone == resp.outcome and copy.deepcopy(resp.outcome) is resp.outcome
    changeable = dict(resp.details)
    changeable["note"] = "mine"
    assert "note" not in resp.details and json.dumps(resp.model_dump(include_details=True))


# -- depth: no RecursionError anywhere ----------------------------------------------------------------------


def test_an_unknown_field_nested_5000_deep_is_a_400_naming_it():
    with pytest.raises(GraderValidationError) as info:
        graders.validate({**SC, "metadata": nested(5000)})
    assert info.value.param.startswith("metadata.k.k") and "nested deeper than 200 levels" in info.value.message


def test_a_model_sample_of_100000_brackets_read_through_output_json():
    """'[' * 100000 is not JSON (and would be too deep if it were): output_json is null, the reference unresolved."""
    grader = {**SC, "input": "{{ sample.output_json[0] }}"}
    resp = graders.run(grader, "[" * 100_000, {"a": "x"})
    assert resp.errors["invalid_variable_error"] and "not valid JSON" in resp.errors["invalid_variable_error_details"]
    deep_but_valid = "[" * 300 + "]" * 300  # JSON, but deeper than the engine holds: not JSON here (§5.7)
    assert graders.run(grader, deep_but_valid, {"a": "x"}).errors["invalid_variable_error"]
    assert graders.run(grader, "[" * 150 + "]" * 150, {"a": "x"}).errors["invalid_variable_error"] is False


@pytest.mark.parametrize("grader", [SC, TS, PY], ids=["string_check", "text_similarity", "python"])
def test_an_item_nested_5000_deep_fails_its_row_naming_the_field(grader):
    rows = [{"model_sample": "x", "item": {"a": nested(5000)}}, {"model_sample": "x", "item": {"a": "x"}}]
    bad, good = graders.compile(grader).run_many(rows)
    assert bad.errors["other_error"] and bad.details["param"].startswith("item.a") and "nested deeper than 200 levels" in bad.details["error"]
    assert not good.failed


def test_a_jsonl_line_of_200000_brackets_costs_only_its_row(tmp_path):
    from graders.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_bytes(b'{"model_sample": "x", "item": {"a": "x"}}\n' + b"[" * 200_000 + b"\n" + b'{"model_sample": "y", "item": {"a": "y"}}\n')
    grader = tmp_path / "g.json"
    grader.write_text(json.dumps(SC))
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(grader), str(data), "--out", str(out), "--details", "--quiet"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["reward"] for line in lines] == [1.0, 0.0, 1.0]
    assert lines[1]["details"]["error"] == "invalid row: line 2 is not valid JSON: it is nested deeper than 200 levels"


# -- text that is not valid Unicode: one rule, the row refused naming the field and the byte offset ----------


@pytest.mark.parametrize("grader", [SC, TS, PY, MULTI], ids=["string_check", "text_similarity", "python", "multi"])
def test_a_lone_surrogate_in_an_item_refuses_the_row_naming_field_and_offset(grader):
    bad, good = graders.compile(grader).run_many([{"model_sample": "x", "item": {"a": "Par\udcffis"}}, {"model_sample": "x", "item": {"a": "x"}}])
    assert bad.reward == 0.0 and bad.errors["other_error"] and not good.failed
    assert "'item.a' is not valid UTF-8: byte 0xff at byte 3 of the text" in bad.details["error"]


def test_invalid_utf8_in_a_batch_row_is_refused_and_details_out_still_writes(tmp_path):
    """It was graded as 'Par\\udcffis' by string_check, a crashed worker by python, and `--details --out` raised
    UnicodeEncodeError; now the row is refused with the field and the byte offset, and every line is written."""
    from graders.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_bytes(b'{"model_sample": "Par\xffis", "item": {"a": "Paris"}}\n{"model_sample": "x", "item": {"a": "\\udc80"}}\n{"model_sample": "x", "item": {"a": "x"}}\n')
    for grader_config in (SC, PY):
        grader = tmp_path / "g.json"
        grader.write_text(json.dumps(grader_config))
        out = tmp_path / "out.jsonl"
        assert main(["batch", str(grader), str(data), "--out", str(out), "--details", "--quiet", "--force"]) == 0
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [line["reward"] for line in lines][:2] == [0.0, 0.0]
        assert "'model_sample' is not valid UTF-8: byte 0xff at byte 21 of the line" in lines[0]["details"]["error"]
        assert "'item.a' is not valid Unicode: a lone surrogate U+DC80" in lines[1]["details"]["error"]
        assert not lines[2]["metadata"]["errors"]["python_grader_server_error"]


def test_a_lone_surrogate_in_score_model_content_is_refused_before_any_request(chat):
    chat.reset()
    options = Options().with_values({"models.base_url": chat.base_url})
    resp = graders.run(SCORE, "an answer with \ud800 in it", {"a": "x"}, options=options)
    assert resp.errors["other_error"] and "'sample.output_text' is not valid Unicode: a lone surrogate U+D800 at byte 15" in resp.details["error"]
    assert chat.stats()["requests"] == 0


def test_a_config_with_a_lone_surrogate_is_a_400():
    with pytest.raises(GraderValidationError) as info:
        graders.validate({**SC, "reference": "caf\udce9"})
    assert info.value.param == "reference" and "not valid UTF-8: byte 0xe9 at byte 3" in info.value.message


# -- NaN: JSON has none, so a row holding one is refused wherever it is used ----------------------------------


@pytest.mark.parametrize("grader", [SC, PY], ids=["string_check", "python"])
def test_nan_in_an_item_refuses_the_row_instead_of_arriving_as_none(grader):
    """orjson would send NaN to a python grader as `null`; a template would render `NaN`. Neither is JSON."""
    for value in (float("nan"), float("inf"), {"deep": [1.0, float("-inf")]}):
        resp = graders.compile(grader).run("x", {"a": value})
        assert resp.errors["other_error"] and "which JSON cannot hold" in resp.details["error"], value
    assert graders.run({**SC, "input": "{{ sample.output_json }}", "reference": "null"}, "NaN").reward == 1.0  # not JSON


def test_cli_json_arguments_are_strict(capsys, tmp_path):
    from graders.cli import main

    grader = tmp_path / "g.json"
    grader.write_text(json.dumps(SC))
    assert main(["run", str(grader), "--sample", "x", "--item", '{"a": NaN}']) == 2
    assert "NaN is not a JSON number" in capsys.readouterr().err


# -- cost: every grade bounded ----------------------------------------------------------------------------


def _slowest(compiled: graders.CompiledGrader, rows: list[dict[str, Any]]) -> float:
    worst = 0.0
    for row in rows:
        start = time.perf_counter()
        compiled.run(row["model_sample"], row["item"])
        worst = max(worst, time.perf_counter() - start)
    return worst


@pytest.mark.parametrize("metric", ["fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_5", "rouge_l"])
def test_the_engines_own_work_per_grade_stays_within_seconds_at_the_default_limits(metric):
    """Inputs right at `text_similarity.max_chars`, made of what costs each metric most (long identical and long
    disjoint texts, many distinct words): the engine's work for one grade (rendering, the metric, the response)
    stays within a few seconds, with room for a loaded machine."""
    limit = Options().text_similarity.max_chars
    words = " ".join(f"w{i}" for i in range(limit // 8))[:limit]
    texts = [("ab " * limit)[:limit], ("xy" * limit)[:limit], words]
    compiled = graders.compile({**TS, "evaluation_metric": metric})
    rows = [{"model_sample": h, "item": {"a": r}} for h in texts for r in (texts[0], texts[2])]
    assert _slowest(compiled, rows) < 5.0


@pytest.mark.parametrize("scorer", ["ratio", "ratio_dp", "wratio", "wratio_dp", "token_set_dp", "token_sort_dp", "partial"])
def test_every_fuzzy_match_scorer_stays_within_seconds_at_its_limits(scorer):
    opts = Options().with_values({"text_similarity.fuzzy_match.scorer": scorer})
    limit, partial = opts.text_similarity.max_chars, opts.text_similarity.fuzzy_match.max_partial_chars
    long_text = ("abcde fgh " * limit)[:limit]
    rows = [
        {"model_sample": long_text, "item": {"a": long_text[::-1]}},
        {"model_sample": long_text[:partial], "item": {"a": long_text}},
        {"model_sample": long_text[:partial], "item": {"a": long_text[1 : partial + 1]}},
    ]
    assert _slowest(graders.compile(TS, opts), rows) < 5.0


def test_a_100_mb_model_sample_to_a_python_grader_is_refused_naming_it_and_64_mb_is_sent_once():
    """It was sent twice (the text is in output_text and in choices) and the worker ran out of memory."""
    source = "def grade(sample, item):\n    return float(sample['output_text'] is sample['choices'][0]['message']['content'])\n"
    with graders.compile({"type": "python", "source": source}) as compiled:
        big = compiled.run("x" * 100_000_000, {})
        assert big.errors["other_error"] and big.details["param"] == "sample" and big.details["limit"] == "python.max_input_bytes"
        assert compiled.run("x" * 60_000_000, {}).reward == 1.0  # one string, in both places


def test_string_check_is_linear_on_megabytes():
    start = time.perf_counter()
    for operation in ("eq", "ne", "like", "ilike"):
        graders.run({**SC, "operation": operation}, "ab" * 2_000_000, {"a": "ab" * 1000 + "c"})
    assert time.perf_counter() - start < 5.0
