"""The `GraderRunResponse` contract (§3.2–§3.4)."""

from __future__ import annotations

import json

import graders
from graders import ERROR_KEYS, Options
from graders.response import SCHEMA_ERROR_KEYS, GraderRunResponse, Outcome, ResponseFormat

SC = {"type": "string_check", "name": "example", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "operation": "eq"}

OBSERVED_ERROR_KEYS = [
    "formula_parse_error", "sample_parse_error", "sample_parse_error_details", "truncated_observation_error",
    "unresponsive_reward_error", "invalid_variable_error", "invalid_variable_error_details", "other_error",
    "python_grader_server_error", "python_grader_server_error_type", "python_grader_runtime_error",
    "python_grader_runtime_error_details", "model_grader_server_error", "model_grader_refusal_error",
    "model_grader_refusal_error_details", "model_grader_parse_error", "model_grader_parse_error_details",
    "model_grader_exceeded_max_tokens_error", "model_grader_server_error_details", "endpoint_grader_internal_error",
    "endpoint_grader_internal_error_details", "endpoint_grader_server_error", "endpoint_grader_server_error_details",
    "endpoint_grader_safety_check_error",
]  # fmt: skip


def test_key_order_and_all_24_error_keys_as_observed():
    body = graders.run(SC, "x", {"a": "x"}).model_dump(mode="json")
    assert list(body) == ["reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"]
    assert list(body["metadata"]) == ["name", "type", "errors", "execution_time", "scores", "token_usage", "sampled_model_name"]
    assert list(body["metadata"]["errors"]) == OBSERVED_ERROR_KEYS == list(ERROR_KEYS)


def test_defaults_false_and_null():
    errors = graders.run(SC, "x", {"a": "x"}).errors
    for key, value in errors.items():
        assert value is (None if key.endswith(("_details", "_type")) else False), key


def test_success_body_matches_the_captured_shape():
    body = graders.run(SC, "x", {"a": "x"}).model_dump()
    assert body["reward"] == 1.0 and isinstance(body["reward"], float)
    assert body["metadata"]["name"] == "example" and body["metadata"]["type"] == "string_check"
    assert body["metadata"]["scores"] == {} and body["sub_rewards"] == {}
    assert body["metadata"]["token_usage"] is None and body["metadata"]["sampled_model_name"] is None
    assert body["model_grader_token_usage_per_model"] == {}
    assert isinstance(body["metadata"]["execution_time"], float) and body["metadata"]["execution_time"] >= 0
    json.dumps(body)


def test_failure_is_a_normal_response_reward_zero():
    resp = graders.run(SC, "x", {})
    assert resp.reward == 0.0 and resp.failed
    assert resp.model_dump()["metadata"]["errors"]["invalid_variable_error"] is True


def test_missing_name_generated_per_request():
    unnamed = {k: v for k, v in SC.items() if k != "name"}
    names = {graders.run(unnamed, "x", {"a": "x"}).name for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("grader-") and len(n) == 19 for n in names)


def test_schema14_switch():
    resp = graders.run(SC, "x", {"a": "x"}, options=Options().with_values({"response.error_keys": "schema14"}))
    assert list(resp.errors) == list(SCHEMA_ERROR_KEYS) and len(SCHEMA_ERROR_KEYS) == 14


def _model_response(fmt: str) -> GraderRunResponse:
    usage = {"gpt-x": {"prompt_tokens": 100, "total_tokens": 150, "completion_tokens": 50, "cached_tokens": 0}}
    outcome = Outcome(0.5, usage=usage, sampled_model_name="gpt-x")
    return GraderRunResponse(0.5, "n", "score_model", 0.1, outcome, ResponseFormat.from_options(fmt, "observed24"))


def test_token_usage_shapes_U4():
    """§3.2: counters in the OpenAPI example's order; U4 integer/null alternatives."""
    body = _model_response("object").model_dump()
    assert list(body["metadata"]["token_usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens", "cached_tokens"]
    assert body["metadata"]["sampled_model_name"] == "gpt-x"
    assert body["model_grader_token_usage_per_model"] == {"gpt-x": body["metadata"]["token_usage"]}
    assert _model_response("integer").model_dump()["metadata"]["token_usage"] == 150
    assert _model_response("null").model_dump()["metadata"]["token_usage"] is None


def test_full_precision_floats():
    outcome = Outcome(0.1 + 0.2)
    resp = GraderRunResponse(outcome.score, "n", "python", 0.0, outcome, ResponseFormat())
    assert json.loads(resp.model_dump_json())["reward"] == 0.30000000000000004


def test_details_only_on_request():
    resp = graders.run(SC, "x", {}, options=Options().with_values({"explain": True}))
    assert "details" not in resp.model_dump()
    assert "item.a" in resp.model_dump(include_details=True)["details"]["error"]


def test_outcome_fail_rejects_unknown_flags():
    import pytest

    with pytest.raises(ValueError):
        Outcome.fail("made_up_error")


def test_openai_sdk_types_accept_the_wire_json():
    """Clients using the openai SDK's own GraderRunResponse type can read what we return (schema fields)."""
    from openai.types.fine_tuning.alpha import GraderRunResponse as SDKResponse

    parsed = SDKResponse.model_validate(graders.run(SC, "x", {}).model_dump())
    assert parsed.reward == 0.0 and parsed.metadata.errors.invalid_variable_error is True
    integer_usage = _model_response("integer").model_dump()
    assert SDKResponse.model_validate(integer_usage).metadata.token_usage == 150


def test_model_dump_modes_are_pydantics():
    """`mode` is keyword-only and defaults to "python" as in pydantic; the SDK's own model dumps the same dicts."""
    from openai.types.fine_tuning.alpha import GraderRunResponse as SDKResponse

    resp = _model_response("object")
    for sdk_readable in (_model_response("integer"), graders.run(SC, "x", {})):  # the SDK types token_usage as int
        for mode in ("python", "json"):
            mine = sdk_readable.model_dump(mode=mode)
            assert SDKResponse.model_validate(mine).model_dump(mode=mode, by_alias=True, exclude_unset=True) == mine
    assert resp.model_dump() == resp.model_dump(mode="json")
    traced = GraderRunResponse(1.0, "n", "python", 0.0, Outcome(1.0, details={"pair": ("a", 1), "obj": ...}), ResponseFormat())
    assert traced.model_dump(include_details=True)["details"] == {"pair": ("a", 1), "obj": ...}
    assert traced.model_dump(mode="json", include_details=True)["details"] == {"pair": ["a", 1], "obj": "Ellipsis"}
    assert json.loads(traced.model_dump_json(include_details=True))["details"]["pair"] == ["a", 1]
    import pytest

    with pytest.raises(ValueError, match="mode"):
        resp.model_dump(mode="yaml")
    with pytest.raises(TypeError):
        resp.model_dump("json")  # type: ignore[misc]


# -- the fast line encoder ---------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graders.response import FLAG_KEYS, TEXT_ERROR_KEYS, ResponseEncoder  # noqa: E402

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_num = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e-05, 3.2e-06, 1e16, 0.0, -0.0, 5e-324])
_usage = st.dictionaries(_text, st.fixed_dictionaries({k: st.integers(0, 10**12) for k in ("prompt_tokens", "total_tokens", "completion_tokens", "cached_tokens")}), max_size=3)
_errors = st.dictionaries(st.sampled_from(FLAG_KEYS), st.just(True), max_size=4).flatmap(
    lambda flags: st.fixed_dictionaries({**{k: st.just(v) for k, v in flags.items()}}, optional={k: _text for k in sorted(TEXT_ERROR_KEYS)})
)


@settings(max_examples=400, deadline=None)
@given(
    reward=_num,
    elapsed=_num,
    name=_text,
    errors=st.none() | _errors,
    subs=st.none() | st.dictionaries(_text, _num, max_size=4),
    usage=st.none() | _usage,
    sampled=st.none() | _text,
    usage_format=st.sampled_from(["object", "integer", "null"]),
    keys=st.sampled_from(["observed24", "schema14"]),
    details=st.none() | st.dictionaries(_text, _text | _num | st.lists(st.integers(), max_size=3), max_size=3),
)
def test_encoder_is_byte_equal_to_json_dumps_of_model_dump(reward, elapsed, name, errors, subs, usage, sampled, usage_format, keys, details):
    fmt = ResponseFormat.from_options(usage_format, keys)
    outcome = Outcome(reward, errors or None, usage or None, sampled, subs, details)
    resp = GraderRunResponse(reward, name, "multi", elapsed, outcome, fmt)
    encoder = ResponseEncoder(name, "multi", fmt)
    for include in (False, True):
        want = json.dumps(resp.model_dump(mode="json", include_details=include), ensure_ascii=False, separators=(",", ":")).encode()
        assert encoder.encode(resp, include_details=include) == want


def test_encoder_writes_lone_surrogates_like_the_standard_library():
    fmt = ResponseFormat()
    resp = GraderRunResponse(0.0, "g", "string_check", 0.0, Outcome.fail("other_error", "bad \udcff byte"), fmt)
    line = ResponseEncoder("g", "string_check", fmt).encode(resp, include_details=True)
    assert json.loads(line)["details"]["error"] == "bad \udcff byte"
