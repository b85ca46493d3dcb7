"""Schema and validation rules (§4, §11.1, §12): each check with the envelope it produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import graders
from graders import GraderValidationError, Options, validate
from graders.validation import python_source_problem

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "graders"

SC = {"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
MSG = [{"role": "user", "content": "Grade {{ sample.output_text }}"}]
SCORE = {"type": "score_model", "model": "gpt-4o-2024-08-06", "input": MSG}
LABEL = {"type": "label_model", "model": "gpt-4o-2024-08-06", "input": MSG, "labels": ["good", "bad"], "passing_labels": ["good"]}


def error_of(grader, options=None, context="run") -> GraderValidationError:
    with pytest.raises(GraderValidationError) as info:
        validate(grader, options, context=context)
    return info.value


def test_envelope_matches_the_observed_multi_map_error():
    """§11.1 / §12.1: the one hosted 400 message we have, byte for byte."""
    err = error_of({"type": "multi", "graders": {"input": "x"}, "calculate_output": "input"})
    assert err.envelope() == {
        "error": {
            "message": "Invalid type for 'graders.input': expected an object, but got a string instead.",
            "type": "invalid_request_error",
            "param": "graders.input",
            "code": "invalid_type",
        }
    }
    assert str(err).startswith("400: ")


@pytest.mark.parametrize(
    ("grader", "param", "code"),
    [
        pytest.param({"input": "a"}, "type", "missing_required_parameter", id="missing_type"),
        pytest.param({"type": 3}, "type", "invalid_type", id="type_not_string"),
        pytest.param({"type": "regex"}, "type", "invalid_value", id="unknown_type"),
        pytest.param(LABEL, "type", "invalid_value", id="label_model_only_inside_multi"),
        pytest.param({**SC, "input": 1}, "input", "invalid_type", id="input_not_string"),
        pytest.param({k: v for k, v in SC.items() if k != "reference"}, "reference", "missing_required_parameter", id="missing_reference"),
        pytest.param({**SC, "operation": "neq"}, "operation", "invalid_value", id="neq_alias_off_by_default_U17"),
        pytest.param({**SC, "name": 5}, "name", "invalid_type", id="name_not_string"),
        pytest.param({"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "bleurt"}, "evaluation_metric", "invalid_value", id="unknown_metric"),
        pytest.param({**SCORE, "input": "hi"}, "input", "invalid_type", id="messages_not_array"),
        pytest.param({**SCORE, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value", id="bad_role"),
        pytest.param({**SCORE, "input": [{"role": "user", "content": 5}]}, "input[0].content", "invalid_type", id="content_number"),
        pytest.param({**SCORE, "input": [{"role": "user", "content": [{"type": "input_txt", "text": "x"}]}]}, "input[0].content[0].type", "invalid_value", id="unknown_content_part"),
        pytest.param({**SCORE, "input": [{"role": "user", "content": {"type": "input_image", "image_url": "u", "detail": "max"}}]}, "input[0].content.detail", "invalid_value", id="bad_image_detail"),
        pytest.param({**SCORE, "input": [{"role": "user", "content": {"type": "input_audio", "input_audio": {"data": "x", "format": "ogg"}}}]}, "input[0].content.input_audio.format", "invalid_value", id="bad_audio_format"),
        pytest.param({**SCORE, "range": [0]}, "range", "invalid_value", id="range_one_number"),
        pytest.param({**SCORE, "range": [1, 0]}, "range", "invalid_value", id="range_min_not_below_max"),
        pytest.param({**SCORE, "range": ["0", 1]}, "range[0]", "invalid_type", id="range_string"),
        pytest.param({**SCORE, "sampling_params": {"max_completions_tokens": 0}}, "sampling_params.max_completions_tokens", "invalid_value", id="max_tokens_zero"),
        pytest.param({**SCORE, "sampling_params": {"reasoning_effort": "extreme"}}, "sampling_params.reasoning_effort", "invalid_value", id="bad_reasoning_effort"),
        pytest.param({**SCORE, "sampling_params": {"temperature": "hot"}}, "sampling_params.temperature", "invalid_type", id="temperature_string"),
        pytest.param({"type": "python", "source": "def grade(s, i):\n    return 1\n", "image_tag": "2024-01-01"}, "image_tag", "invalid_value", id="unknown_image_tag_U32"),
        pytest.param({"type": "python", "source": "#" * 256001 + "\ndef grade(s, i): return 1"}, "source", "invalid_value", id="source_too_large_U29"),
        pytest.param({"type": "multi", "graders": {}, "calculate_output": "1"}, "graders", "invalid_value", id="empty_multi"),
        pytest.param({"type": "multi", "graders": [SC], "calculate_output": "a"}, "graders", "invalid_type", id="graders_list"),
        pytest.param({"type": "multi", "graders": {"a": {"type": "multi", "graders": {"b": SC}, "calculate_output": "b"}}, "calculate_output": "a"}, "graders.a.type", "invalid_value", id="no_multi_inside_multi"),
        pytest.param({"type": "multi", "graders": {"a": SC}, "calculate_output": "a +"}, "calculate_output", "invalid_value", id="formula_does_not_parse"),
        pytest.param({"type": "multi", "graders": {"a": SC}, "calculate_output": "a + b"}, "calculate_output", "invalid_value", id="formula_unknown_variable"),
        pytest.param({"type": "multi", "graders": {"a-b": SC}, "calculate_output": "1"}, "graders.a-b", "invalid_value", id="key_not_identifier"),
        pytest.param({"type": "multi", "graders": {"a": {**SC, "operation": "eqq"}}, "calculate_output": "a"}, "graders.a.operation", "invalid_value", id="sub_grader_path"),
        pytest.param({"type": "multi", "graders": {"a": {**LABEL, "labels": []}}, "calculate_output": "a"}, "graders.a.labels", "invalid_value", id="labels_empty"),
        pytest.param({"type": "multi", "graders": {"a": {**LABEL, "passing_labels": ["great"]}}, "calculate_output": "a"}, "graders.a.passing_labels[0]", "invalid_value", id="passing_labels_subset_U46"),
        pytest.param({"type": "multi", "graders": {"a": SC}}, "calculate_output", "missing_required_parameter", id="missing_formula"),
    ],
)
def test_invalid_configs_name_the_field(grader, param, code):
    err = error_of(grader)
    assert (err.param, err.code) == (param, code), err.message
    assert f"'{param}'" in err.message
    assert err.envelope()["error"]["type"] == "invalid_request_error"


def test_messages_follow_the_hosted_wording():
    """§12.1: 'Invalid type for' / 'Invalid value for' / 'Missing required parameter' with articles."""
    assert error_of({**SC, "input": []}).message == "Invalid type for 'input': expected a string, but got an array instead."
    assert error_of({**SC, "input": True}).message == "Invalid type for 'input': expected a string, but got a boolean instead."
    assert error_of({k: v for k, v in SC.items() if k != "input"}).message == "Missing required parameter: 'input'."
    assert error_of({**SC, "operation": "x"}).message.startswith("Invalid value for 'operation': ")


def test_checks_run_in_order_first_failure_wins():
    """§12.2: the type check (1) is reported before a type error (2) elsewhere in the config."""
    err = error_of({"type": "multi", "graders": {"a": {**SC, "input": 1}, "b": LABEL | {"type": "multi"}}, "calculate_output": "a"})
    assert err.param == "graders.b.type"


def test_strict_types_never_coerce():
    assert error_of({**SCORE, "range": [0, "1"]}).param == "range[1]"
    assert error_of({**SCORE, "sampling_params": {"seed": True}}).param == "sampling_params.seed"


def test_integers_are_numbers():
    assert validate({**SCORE, "range": [0, 10]}).grader["range"] == [0, 10]


def test_validate_echoes_in_order_and_appends_generated_name():
    """§3.5: keys come back as sent; a generated name is appended last; nothing else is added."""
    echo = validate({"type": "python", "source": "def grade(sample, item):\n    return 1.0\n"}).grader
    assert list(echo) == ["type", "source", "name"]
    assert echo["name"].startswith("grader-") and len(echo["name"]) == 19 and echo["name"][7:].isalnum()


def test_validate_keeps_a_given_name_and_unknown_fields_U6():
    grader = {"name": "n", **SC, "extra": {"x": 1}}
    assert validate(grader).grader == grader


def test_unknown_fields_rejected_when_switched_U6():
    opts = Options().with_values({"validate.unknown_fields": "reject"})
    err = error_of({**SC, "extra": 1}, opts)
    assert (err.param, err.code) == ("extra", "unknown_parameter")
    err = error_of({"type": "multi", "graders": {"a": {**SC, "x": 1}}, "calculate_output": "a"}, opts)
    assert err.param == "graders.a.x"


def test_generated_names_differ_per_request():
    names = {validate(SC).grader["name"] for _ in range(20)}
    assert len(names) == 20


def test_sub_graders_stay_unnamed_unless_switched_U5():
    multi = {"type": "multi", "graders": {"a": SC}, "calculate_output": "a"}
    assert "name" not in validate(multi).grader["graders"]["a"]
    opts = Options().with_values({"validate.name_sub_graders": True})
    assert validate(multi, opts).grader["graders"]["a"]["name"].startswith("grader-")


def test_neq_alias_accepted_when_switched_U17():
    opts = Options().with_values({"string_check.accept_neq_alias": True})
    assert graders.run({**SC, "operation": "neq"}, "a", {"answer": "b"}, options=opts).reward == 1.0


def test_label_subset_check_can_be_switched_off_U46():
    multi = {"type": "multi", "graders": {"a": {**LABEL, "passing_labels": ["other"]}}, "calculate_output": "a"}
    validate(multi, Options().with_values({"validate.label_subset_check": False}))


BAD_SOURCES = {
    "grade_one_argument": "def grade(sample):\n    return 1\n",
    "syntax_error": "def grade(sample, item:\n",
    "bad_indentation": "def grade(sample, item):\nreturn 1\n",
    "no_grade_function": "x = 1\n",
}


@pytest.mark.parametrize("source", list(BAD_SOURCES.values()), ids=list(BAD_SOURCES))
def test_python_compile_check_warns_beside_the_echo_by_default_U47(source):
    """§12.2 check 8: a hosted run accepted a source that does not compile, so by default /validate succeeds, the
    echo stays the hosted one, and the problem is a warning naming the field; `error` is the 400, `off` silent."""
    grader = {"type": "python", "source": source}
    result = validate(grader)
    assert list(result.grader) == ["type", "source", "name"] and "warnings" not in result.model_dump()
    assert len(result.warnings) == 1 and result.warnings[0].startswith("source: ") and "U47" in result.warnings[0]
    err = error_of(grader, Options().with_values({"validate.python_compile_check": "error"}))
    assert (err.param, err.code) == ("source", "invalid_value")
    assert validate(grader, Options().with_values({"validate.python_compile_check": "off"})).warnings == ()
    multi = {"type": "multi", "graders": {"p": grader}, "calculate_output": "p"}
    assert validate(multi).warnings[0].startswith("graders.p.source: ")


def test_a_source_that_does_not_compile_scores_zero_on_every_row_U47():
    """What the hosted run did with it: every row a python_grader_runtime_error with reward 0."""
    responses = graders.compile({"type": "python", "source": BAD_SOURCES["bad_indentation"]}).run_many([{"model_sample": s} for s in ["a", "b"]])
    assert [r.reward for r in responses] == [0.0, 0.0]
    assert all("IndentationError" in r.errors["python_grader_runtime_error_details"] for r in responses)


def test_validate_warns_about_references_that_can_never_resolve():
    """U48 off: a malformed `{{ … }}` is not a 400 but a warning; so are a key `sample` never has and a step into
    a tool call's JSON-string arguments while U50 is off."""
    warnings = validate({**SC, "input": "{{ output_text }} {{ sample.output_txt }}", "reference": "{{ sample.output_tools[0].function.arguments.city }}"}).warnings
    assert [w.split(":")[0] for w in warnings] == ["input", "input", "reference"]
    assert "U48" in warnings[0] and "no key 'output_txt'" in warnings[1] and "json_string_steps=parse" in warnings[2]
    parse = Options().with_values({"template.json_string_steps": "parse"})
    assert len(validate({**SC, "reference": "{{ sample.output_tools[0].function.arguments.city }}"}, parse).warnings) == 0
    assert validate(SC).warnings == ()


def test_template_syntax_checked_only_when_switched_U48():
    bad = {**SC, "input": "{{ output_text }}"}
    validate(bad)
    err = error_of(bad, Options().with_values({"validate.template_syntax": True}))
    assert err.param == "input"
    bad_msg = {**SCORE, "input": [{"role": "user", "content": [{"type": "input_text", "text": "{{ item }}"}]}]}
    assert error_of(bad_msg, Options().with_values({"validate.template_syntax": True})).param == "input[0].content[0].text"


def test_pass_threshold_outside_evals_U18():
    ts = {"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "bleu", "pass_threshold": 0.5}
    validate(ts)
    assert error_of(ts, Options().with_values({"text_similarity.pass_threshold_outside_evals": "reject"})).param == "pass_threshold"


def test_evals_context_allows_label_model_and_requires_text_similarity_threshold():
    """§4 and §13: Evals criteria take label_model but not multi; text_similarity needs pass_threshold."""
    validate(LABEL, context="evals")
    assert error_of({"type": "multi", "graders": {"a": SC}, "calculate_output": "a"}, context="evals").param == "type"
    ts = {"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "bleu"}
    assert error_of(ts, context="evals").code == "missing_required_parameter"


def test_cosine_evals_only_switch_U24():
    ts = {"type": "text_similarity", "input": "a", "reference": "b", "evaluation_metric": "cosine"}
    validate(ts)
    assert error_of(ts, Options().with_values({"validate.cosine_evals_only": True})).param == "evaluation_metric"


def test_model_allow_list_and_strict_params_switches_U35_U36():
    custom = {**SCORE, "model": "my-local-judge"}
    validate(custom)
    assert error_of(custom, Options().with_values({"validate.model_allow_list": True})).param == "model"
    reasoning = {**SCORE, "model": "o3-2025-04-16", "sampling_params": {"temperature": 0.2}}
    validate(reasoning)
    err = error_of(reasoning, Options().with_values({"validate.strict_model_params": True}))
    assert err.param == "sampling_params.temperature"


def test_label_model_sampling_params_reject_switch_U38():
    multi = {"type": "multi", "graders": {"a": {**LABEL, "sampling_params": {"max_tokens": 5}}}, "calculate_output": "a"}
    validate(multi)
    assert error_of(multi, Options().with_values({"label_model.sampling_params": "reject"})).param == "graders.a.sampling_params"


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("def grade(sample, item):\n    return 1\n", True),
        ("def grade(sample, item, extra=None):\n    return 1\n", True),
        ("def grade(*args):\n    return 1\n", True),
        ("from mymod import grade\n", True),
        ("class grade:\n    def __init__(self, s, i): pass\n", True),
        ("def grade(a, b, c):\n    return 1\n", False),
        ("def grade(a, b, *, k):\n    return 1\n", False),
        ("async def grade(a, b):\n    return 1\n", False),
        ("def grade(a, b)\n", False),
        ("x = '\0'", False),
    ],
)
def test_python_source_check_never_executes_code(source, ok):
    assert (python_source_problem(source) is None) == ok


def test_deeply_nested_multi_map_rejected_cleanly():
    grader: dict = SC
    for _ in range(200):
        grader = {"type": "multi", "graders": {"a": grader}, "calculate_output": "a"}
    assert error_of(grader).param == "graders.a.type"


def test_non_object_grader():
    assert error_of("string_check").message == "Invalid type for 'grader': expected an object, but got a string instead."


def test_huge_strings_are_fine():
    validate({**SC, "reference": "x" * 5_000_000})


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_fixture_graders_validate(path):
    grader = json.loads(path.read_text())
    assert validate(grader).grader["name"] == grader["name"]


def test_a_wrong_json_type_names_every_type_the_field_accepts():
    """An untagged union (message content) picks its branch by JSON type; none fits: every accepted type is named."""
    err = error_of({**SCORE, "input": [{"role": "user", "content": 5}]})
    assert err.message == "Invalid type for 'input[0].content': expected a string, an object or an array, but got an integer instead."
    assert error_of({**SCORE, "sampling_params": "hot"}).message.endswith("expected an object, but got a string instead.")


def test_a_missing_field_or_wrong_type_is_reported_before_a_wrong_value():
    """§12.2: checks 2 (types, required) come before 3 (enums) even when the enum field comes first."""
    err = error_of({"type": "text_similarity", "evaluation_metric": "bleurt", "input": "a", "reference": 3})
    assert (err.param, err.code) == ("reference", "invalid_type")
    err = error_of({"type": "text_similarity", "evaluation_metric": "bleurt", "input": "a", "reference": "b"})
    assert (err.param, err.code) == ("evaluation_metric", "invalid_value")
    assert err.message == ("Invalid value for 'evaluation_metric': 'bleurt' is not supported; expected 'cosine', 'fuzzy_match', "
                           "'bleu', 'gleu', 'meteor', 'rouge_1', 'rouge_2', 'rouge_3', 'rouge_4', 'rouge_5' or 'rouge_l'.")


def test_parsed_configs_are_immutable_and_keep_unknown_fields():
    from graders.validation import parse_grader

    config = parse_grader({**SCORE, "sampling_params": {"seed": 1, "top_k": 5}, "note": "x"})
    assert config.extra == {"note": "x"} and config.sampling_params.dump(exclude_none=True) == {"seed": 1, "top_k": 5}
    with pytest.raises(AttributeError):
        config.model = "other"
