"""score_model (§9) and label_model (§10) through both HTTP clients (`models.transport`: the lean one and the
`openai` SDK) against a real HTTP server process.

`tests/servers/chat_server.py` speaks Chat Completions on 127.0.0.1; each prompt carries a `#script {...}` that
decides the reply (a score, a label, invalid JSON, a refusal, a length cut-off, 429s, 500s, a hang, a rejected
json_schema). Nothing is mocked: every assertion is about bytes that crossed a socket, and request counts come from
the server's own counter.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

import graders
from graders import Options
from servers.chat_server import RunningServer

FAST = {"models.timeout_s": 2.0, "models.max_retries": 2, "models.backoff_s": 0.01, "models.backoff_max_s": 0.2}
TRANSPORTS = ("lean", "openai_sdk")


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Any:
    """Every test here runs on both HTTP clients: `FAST`, which every test's options start from, names the one."""
    FAST["models.transport"] = request.param
    yield request.param
    del FAST["models.transport"]


@pytest.fixture(scope="module")
def server() -> Any:
    with RunningServer() as srv:
        yield srv


@pytest.fixture()
def srv(server: RunningServer) -> RunningServer:
    server.reset()
    return server


def opts(srv: RunningServer, **values: Any) -> Options:
    return Options().with_values({"models.base_url": srv.base_url, **FAST, **{k.replace("__", "."): v for k, v in values.items()}})


def score_grader(model: str = "judge", rng: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    grader: dict[str, Any] = {
        "type": "score_model",
        "name": "quality",
        "model": model,
        "input": [
            {"role": "system", "content": "Score the answer."},
            {"role": "user", "content": "Answer: {{ sample.output_text }} #script {{ item.script }}"},
        ],
        **extra,
    }
    if rng is not None:
        grader["range"] = rng
    return grader


def label_grader(model: str = "labeller", **extra: Any) -> dict[str, Any]:
    return {
        "type": "label_model",
        "name": "tone",
        "model": model,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "{{ sample.output_text }} #script {{ item.script }}"}]}],
        "labels": ["positive", "neutral", "negative"],
        "passing_labels": ["positive", "neutral"],
        **extra,
    }


def run_label(grader: dict[str, Any], script: dict[str, Any], options: Options) -> graders.GraderRunResponse:
    """label_model is not a top-level `/run` type (§4); Evals context allows it on its own."""
    with graders.compile(grader, options, context="evals") as compiled:
        return compiled.run("great", {"script": script})


def flags(resp: graders.GraderRunResponse) -> dict[str, Any]:
    return {k: v for k, v in resp.model_dump()["metadata"]["errors"].items() if v}


# -- §9.2, §9.3: scoring, the wire request, accounting ----------------------------------------------------------


def test_score_model_correct_score_and_response_shape(srv: RunningServer) -> None:
    """§9.3 numeric result; §3.2/§3.4 token_usage, sampled_model_name (the server's snapshot), per-model usage."""
    grader = score_grader(sampling_params={"max_completions_tokens": 64, "seed": 7, "temperature": None, "top_p": 0.5})
    resp = graders.run(grader, "Paris", {"script": {"result": 0.75, "usage": [100, 50, 10]}}, options=opts(srv))
    wire = resp.model_dump()
    assert wire["reward"] == 0.75 and not flags(resp)
    usage = {"prompt_tokens": 100, "total_tokens": 150, "completion_tokens": 50, "cached_tokens": 10}
    assert list(wire["metadata"]["token_usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens", "cached_tokens"]
    assert wire["metadata"]["token_usage"] == usage
    assert wire["metadata"]["sampled_model_name"] == "judge-2026-01-01"
    assert wire["model_grader_token_usage_per_model"] == {"judge-2026-01-01": usage}
    assert "steps" not in json.dumps(wire)  # §9.2: steps go to the trace only
    assert resp.details["steps"][0]["description"] == "scripted reply"
    [request] = srv.requests()
    # §9.2 sampling params: names kept, max_completions_tokens renamed, nulls not sent.
    assert request["max_completion_tokens"] == 64 and request["seed"] == 7 and request["top_p"] == 0.5
    assert "temperature" not in request and "max_completions_tokens" not in request
    assert request["messages"] == [
        {"role": "system", "content": "Score the answer."},
        {"role": "user", "content": 'Answer: Paris #script {"result": 0.75, "usage": [100, 50, 10]}'},
    ]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "float_score_classification"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["steps", "result"] and schema["additionalProperties"] is False
    assert "inclusive range 0 to 1." in schema["properties"]["result"]["description"]  # U34 on, default range


@pytest.mark.parametrize(("result", "expected"), [(7.5, 5.0), (-3, -1.0), (0.25, 0.25), (-1, -1.0)])
def test_score_model_clamps_to_range(srv: RunningServer, result: float, expected: float) -> None:
    """§9.3: reward = min(max(result, range[0]), range[1]); negative ranges are legitimate."""
    resp = graders.run(score_grader(rng=[-1, 5]), "x", {"script": {"result": result}}, options=opts(srv))
    assert resp.reward == expected and not flags(resp)
    assert resp.details.get("result", expected) == result
    description = srv.requests()[0]["response_format"]["json_schema"]["schema"]["properties"]["result"]["description"]
    assert "inclusive range -1 to 5." in description


def test_score_model_default_range_clamps_above_one(srv: RunningServer) -> None:
    resp = graders.run(score_grader(), "x", {"script": {"result": 3}}, options=opts(srv))
    assert resp.reward == 1.0


def test_schema_options_u33_minimal_and_u34_off(srv: RunningServer) -> None:
    """U33 `minimal` asks for `result` alone; U34 off leaves the cookbook placeholders."""
    graders.run(score_grader(), "x", {"script": {"result": 1}}, options=opts(srv, score_model__range_in_schema=False))
    graders.run(score_grader(), "x", {"script": {"result": 1}}, options=opts(srv, score_model__response_schema="minimal"))
    cookbook, minimal = (r["response_format"]["json_schema"]["schema"] for r in srv.requests())
    assert "RANGE_MIN to RANGE_MAX" in cookbook["properties"]["result"]["description"]
    assert minimal["properties"] == {"result": {"type": "number"}} and minimal["required"] == ["result"]


def test_multimodal_parts_are_rendered_and_passed_through(srv: RunningServer) -> None:
    """§5.2: input_text, output_text, input_image.image_url and input_audio.data are all templated (§9.2 roles kept)."""
    grader = score_grader()
    grader["input"] = [
        {"role": "developer", "content": {"type": "input_text", "text": "Rubric for {{ item.topic }}"}},
        {"role": "assistant", "content": [{"type": "output_text", "text": "earlier: {{ item.topic }}"}]},
        {
            "role": "user",
            "type": "message",
            "content": [
                "plain {{ sample.output_text }}",
                {"type": "input_image", "image_url": "https://img.example/{{ item.topic }}.png", "detail": "low"},
                {"type": "input_audio", "input_audio": {"data": "{{ item.audio }}", "format": "wav"}},
                {"type": "input_text", "text": "#script {{ item.script }}"},
            ],
        },
    ]
    item = {"topic": "cats", "audio": "UklGRg==", "script": {"result": 0.5}}
    assert graders.run(grader, "meow", item, options=opts(srv)).reward == 0.5
    messages = srv.requests()[0]["messages"]
    assert messages[0] == {"role": "developer", "content": [{"type": "text", "text": "Rubric for cats"}]}
    assert messages[1] == {"role": "assistant", "content": [{"type": "text", "text": "earlier: cats"}]}
    assert messages[2]["content"][:3] == [
        {"type": "text", "text": "plain meow"},
        {"type": "image_url", "image_url": {"url": "https://img.example/cats.png", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]


def test_template_error_spends_no_request(srv: RunningServer) -> None:
    """§5.2: a template error in a model grader is caught before the call, so no tokens are spent."""
    grader = score_grader()
    grader["input"][1]["content"] = "{{ item.missing }}"
    resp = graders.run(grader, "x", {"script": {"result": 1}}, options=opts(srv))
    assert resp.reward == 0.0 and flags(resp)["invalid_variable_error"] is True
    assert resp.model_dump()["metadata"]["token_usage"] is None and resp.sampled_model_name is None
    assert srv.stats()["requests"] == 0


# -- §9.3 failures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "detail"),
    [
        ({"content": "definitely not json"}, "definitely not json"),
        ({"content": '{"steps": [], "result": "high"}'}, "'result' is not a finite number"),
        ({"content": '{"steps": []}'}, "no 'result'"),
    ],
)
def test_unparseable_output_is_a_parse_error_with_usage(srv: RunningServer, script: dict[str, Any], detail: str) -> None:
    """§9.3: invalid JSON or a non-numeric/missing result → model_grader_parse_error, reward 0.0, usage still filled."""
    resp = graders.run(score_grader(), "x", {"script": {**script, "usage": [5, 3, 0]}}, options=opts(srv))
    errors = flags(resp)
    assert resp.reward == 0.0 and errors["model_grader_parse_error"] is True
    assert detail in errors["model_grader_parse_error_details"]
    assert resp.model_dump()["metadata"]["token_usage"]["total_tokens"] == 8
    assert resp.sampled_model_name == "judge-2026-01-01"
    assert srv.stats()["requests"] == 1  # parse errors are never retried


def test_parse_error_details_are_trimmed(srv: RunningServer) -> None:
    resp = graders.run(score_grader(), "x", {"script": {"content": "x" * 5000}}, options=opts(srv))
    text = flags(resp)["model_grader_parse_error_details"]
    assert len(text) < 1200 and "more characters" in text


def test_refusal(srv: RunningServer) -> None:
    """§9.3: message.refusal → model_grader_refusal_error + details, reward 0.0, usage kept."""
    resp = graders.run(score_grader(), "x", {"script": {"refusal": "I can't help with that."}}, options=opts(srv))
    errors = flags(resp)
    assert errors == {"model_grader_refusal_error": True, "model_grader_refusal_error_details": "I can't help with that."}
    assert resp.reward == 0.0 and resp.model_dump()["metadata"]["token_usage"] is not None


def test_length_cutoff(srv: RunningServer) -> None:
    """§9.3: finish_reason "length" → model_grader_exceeded_max_tokens_error, reward 0.0, usage kept."""
    script = {"finish_reason": "length", "content": '{"steps": [{"descr', "usage": [9, 4, 0]}
    resp = graders.run(score_grader(), "x", {"script": script}, options=opts(srv))
    assert flags(resp) == {"model_grader_exceeded_max_tokens_error": True} and resp.reward == 0.0
    assert resp.model_grader_token_usage_per_model == {
        "judge-2026-01-01": {"prompt_tokens": 9, "total_tokens": 13, "completion_tokens": 4, "cached_tokens": 0}
    }
    assert resp.details["raw"] == '{"steps": [{"descr'


def test_429_then_success_honours_retry_after(srv: RunningServer) -> None:
    """Transient 429s are retried, waiting at least the server's Retry-After."""
    script = {"fail": {"status": 429, "times": 2, "retry_after": 0.2, "key": "rl"}, "result": 0.9}
    start = time.perf_counter()
    resp = graders.run(score_grader(), "x", {"script": script}, options=opts(srv, models__backoff_max_s=1.0))
    assert time.perf_counter() - start >= 0.4
    assert resp.reward == 0.9 and not flags(resp)
    assert srv.stats()["requests"] == 3 and resp.details["attempts"] == 3


def test_500_until_retries_run_out(srv: RunningServer) -> None:
    """5xx is transient: retried `max_retries` times, then model_grader_server_error with details and no usage."""
    script = {"fail": {"status": 500, "times": None, "key": "down"}}
    resp = graders.run(score_grader(), "x", {"script": script}, options=opts(srv, models__max_retries=3))
    errors = flags(resp)
    assert resp.reward == 0.0 and errors["model_grader_server_error"] is True
    assert "HTTP 500" in errors["model_grader_server_error_details"] and "after 4 attempts" in errors["model_grader_server_error_details"]
    assert srv.stats()["requests"] == 4
    assert resp.model_dump()["metadata"]["token_usage"] is None


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_never_retried(srv: RunningServer, status: int) -> None:
    script = {"fail": {"status": status, "times": None, "key": f"c{status}"}}
    resp = graders.run(score_grader(), "x", {"script": script}, options=opts(srv))
    assert flags(resp)["model_grader_server_error"] is True
    assert f"HTTP {status}" in flags(resp)["model_grader_server_error_details"]
    assert srv.stats()["requests"] == 1


def test_hanging_response_hits_the_timeout(srv: RunningServer) -> None:
    """A per-request timeout is transient (retried), then a server error naming the timeout."""
    start = time.perf_counter()
    resp = graders.run(
        score_grader(), "x", {"script": {"hang": True}}, options=opts(srv, models__timeout_s=0.3, models__max_retries=1)
    )
    elapsed = time.perf_counter() - start
    assert 0.6 <= elapsed < 3.0
    assert "timed out after 0.3 s (after 2 attempts)" in flags(resp)["model_grader_server_error_details"]
    assert srv.stats()["requests"] == 2


def test_connection_refused_is_a_server_error() -> None:
    options = Options().with_values({**FAST, "models.base_url": "http://127.0.0.1:9/v1", "models.max_retries": 1})
    resp = graders.run(score_grader(), "x", {"script": {}}, options=options)
    assert flags(resp)["model_grader_server_error"] is True
    assert "connection error" in flags(resp)["model_grader_server_error_details"]


# -- structured-output fallback ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 500])
def test_json_schema_rejected_falls_back_to_json_object_and_remembers(srv: RunningServer, status: int, transport: str) -> None:
    """An error naming response_format switches to json_object (schema in the prompt), remembered per
    endpoint+model; llama-cpp-python's server rejects with a 500, which must not be retried as transient."""
    script = {"reject_json_schema": True, "reject_status": status, "result": 0.4}
    model = f"no-schema-model-{status}-{transport}"  # the memory is the process's: a model per test
    first = graders.run(score_grader(model), "x", {"script": script}, options=opts(srv))
    assert first.reward == 0.4 and not flags(first)
    assert first.details["response_format"] == "json_object"
    assert f"json_schema rejected: HTTP {status}" in first.details["response_format_fallback"][0]
    rejected, accepted = srv.requests()
    assert rejected["response_format"]["type"] == "json_schema" and accepted["response_format"] == {"type": "json_object"}
    assert accepted["messages"][0]["role"] == "system" and "float_score_classification" not in accepted["messages"][0]["content"]
    assert '"result"' in accepted["messages"][0]["content"] and "Score the answer." in accepted["messages"][0]["content"]
    srv.reset()
    again = graders.run(score_grader(model), "x", {"script": script}, options=opts(srv))
    assert again.reward == 0.4 and srv.stats()["requests"] == 1  # no second rejection
    assert "remembered" in again.details["response_format_fallback"][0]


def test_fallback_memory_is_per_endpoint_and_key(srv: RunningServer, transport: str) -> None:
    """What a server taught us is remembered per route, and the key is part of the route: two keys on one URL
    can be two accounts, so the second key asks json_schema again before falling back."""
    script = {"reject_json_schema": True, "result": 0.4}
    model = f"no-schema-per-key-{transport}"
    for key, requests in (("sk-one", 2), ("sk-two", 2), ("sk-one", 1)):
        srv.reset()
        resp = graders.run(score_grader(model), "x", {"script": script}, options=opts(srv, models__api_key=key))
        assert resp.reward == 0.4 and srv.stats()["requests"] == requests, key


def test_text_fallback_extracts_json_from_prose(srv: RunningServer, transport: str) -> None:
    """A server rejecting every response_format gets plain text; the JSON object is extracted from the prose."""
    script = {"reject_response_format": True, "content": 'Sure! ```json\n{"steps": [], "result": 0.3}\n``` Done.'}
    resp = graders.run(score_grader(f"plain-text-model-{transport}"), "x", {"script": script}, options=opts(srv))
    assert resp.reward == 0.3 and resp.details["response_format"] == "text"
    assert [r.get("response_format", {}).get("type") for r in srv.requests()] == ["json_schema", "json_object", None]


def test_forced_response_format_never_falls_back(srv: RunningServer) -> None:
    script = {"reject_json_schema": True, "result": 0.4}
    resp = graders.run(score_grader("forced"), "x", {"script": script}, options=opts(srv, models__response_format="json_schema"))
    assert flags(resp)["model_grader_server_error"] is True and srv.stats()["requests"] == 1


# -- §10 label_model ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "reward"), [("positive", 1.0), ("neutral", 1.0), ("negative", 0.0)])
def test_label_model_scores_passing_labels(srv: RunningServer, label: str, reward: float) -> None:
    """§10: 1.0 if the label is in passing_labels, else 0.0; U37 enum + steps schema."""
    resp = run_label(label_grader(), {"result": label}, opts(srv))
    assert resp.reward == reward and not flags(resp) and resp.details["label"] == label
    schema = srv.requests()[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["result"]["enum"] == ["positive", "neutral", "negative"]
    assert schema["required"] == ["steps", "result"]


def test_label_outside_labels_is_a_parse_error(srv: RunningServer) -> None:
    """§10: a label outside `labels` (non-strict server) → model_grader_parse_error, reward 0.0."""
    resp = run_label(label_grader(), {"result": "ecstatic"}, opts(srv))
    assert resp.reward == 0.0 and "'ecstatic' is not one of the labels" in flags(resp)["model_grader_parse_error_details"]


def test_label_model_sampling_params_pass_through(srv: RunningServer) -> None:
    """U38: sampling_params pass through unchanged, `max_tokens` as the cap; U37 enum_only drops steps."""
    grader = label_grader(sampling_params={"max_tokens": 20, "top_p": 0.9, "seed": None, "top_k": 5})
    resp = run_label(grader, {"result": "neutral"}, opts(srv, label_model__response_schema="enum_only"))
    assert resp.reward == 1.0
    request = srv.requests()[0]
    assert request["max_tokens"] == 20 and request["top_p"] == 0.9 and request["top_k"] == 5 and "seed" not in request
    assert request["response_format"]["json_schema"]["schema"]["required"] == ["result"]


# -- §11.4 accounting across a multi, routing, concurrency ----------------------------------------------------


def test_multi_sums_token_usage_per_model(srv: RunningServer) -> None:
    """§11.4: usage summed over the model sub-graders, per snapshot; sampled_model_name of the first (U44)."""
    grader = {
        "type": "multi",
        "name": "combo",
        "graders": {
            "a": score_grader("judge"),
            "b": score_grader("judge"),
            "c": label_grader("labeller"),
        },
        "calculate_output": "a + b + c",
    }
    grader["graders"]["b"]["input"][1]["content"] = "B #script {{ item.b }}"
    grader["graders"]["c"]["input"][0]["content"][0]["text"] = "C #script {{ item.c }}"
    item = {"script": {"result": 0.5, "usage": [10, 5, 1]}, "b": {"result": 0.25, "usage": [20, 7, 2]},
            "c": {"result": "positive", "usage": [3, 2, 0]}}
    resp = graders.run(grader, "x", item, options=opts(srv))
    wire = resp.model_dump()
    assert wire["reward"] == 1.75 and wire["sub_rewards"] == {"a": 0.5, "b": 0.25, "c": 1.0}
    assert wire["model_grader_token_usage_per_model"] == {
        "judge-2026-01-01": {"prompt_tokens": 30, "total_tokens": 42, "completion_tokens": 12, "cached_tokens": 3},
        "labeller-2026-01-01": {"prompt_tokens": 3, "total_tokens": 5, "completion_tokens": 2, "cached_tokens": 0},
    }
    assert wire["metadata"]["token_usage"] == {"prompt_tokens": 33, "total_tokens": 47, "completion_tokens": 14, "cached_tokens": 3}
    assert wire["metadata"]["sampled_model_name"] == "judge-2026-01-01"


def test_endpoint_map_routes_models(srv: RunningServer) -> None:
    """`models.endpoints`: a model-name pattern → endpoint map; the default endpoint here is unreachable."""
    options = Options().with_values(
        {**FAST, "models.max_retries": 0, "models.base_url": "http://127.0.0.1:9/v1",
         "models.endpoints": [{"model": "local-*", "base_url": srv.base_url}]}
    )
    routed = graders.run(score_grader("local-judge"), "x", {"script": {"result": 0.6}}, options=options)
    unrouted = graders.run(score_grader("judge"), "x", {"script": {"result": 0.6}}, options=options)
    assert routed.reward == 0.6 and flags(unrouted)["model_grader_server_error"] is True


def test_default_key_never_leaks_to_a_routed_server(srv: RunningServer) -> None:
    """An endpoint override without its own key sends none, so the default (OpenAI) key stays with OpenAI."""
    base = {**FAST, "models.api_key": "sk-default-secret"}
    graders.run(score_grader(), "x", {"script": {"result": 1}}, options=Options().with_values({**base, "models.base_url": srv.base_url}))
    assert srv.stats()["authorization"] == "Bearer sk-default-secret"
    routed = {**base, "models.endpoints": [{"model": "judge", "base_url": srv.base_url}]}
    graders.run(score_grader(), "x", {"script": {"result": 1}}, options=Options().with_values(routed))
    assert srv.stats()["authorization"] == "Bearer no-key"
    keyed = {**base, "models.endpoints": [{"model": "judge", "base_url": srv.base_url, "api_key": "sk-local"}]}
    graders.run(score_grader(), "x", {"script": {"result": 1}}, options=Options().with_values(keyed))
    assert srv.stats()["authorization"] == "Bearer sk-local"


def test_environment_is_read_at_compile(srv: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    compiled = graders.compile(score_grader(), Options().with_values(FAST))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert compiled.run("x", {"script": {"result": 0.2}}).reward == 0.2


def test_concurrency_limit_holds_across_a_batch_and_sub_graders() -> None:
    """`models.max_concurrency` bounds requests in flight per endpoint across all samples and sub-graders."""
    with RunningServer("--latency", "0.05") as own:
        options = Options().with_values({**FAST, "models.base_url": own.base_url, "models.max_concurrency": 4})
        grader = {"type": "multi", "graders": {"a": score_grader("m1"), "b": score_grader("m2")}, "calculate_output": "a + b"}
        rows = [{"model_sample": "x", "item": {"script": {"result": 0.5}}} for _ in range(24)]
        with graders.compile(grader, options) as compiled:
            out = compiled.run_many(rows)
        assert [r.reward for r in out] == [1.0] * 24
        stats = own.stats()
        assert stats["requests"] == 48 and stats["max_in_flight"] == 4


def test_async_batch(srv: RunningServer) -> None:
    """The async path (`arun_many`) on the caller's own loop gets its own client and limiter."""

    async def main() -> list[float]:
        with graders.compile(score_grader(), opts(srv)) as compiled:
            rows = [{"model_sample": "x", "item": {"script": {"result": i / 10}}} for i in range(10)]
            return [r.reward for r in await compiled.arun_many(rows)]

    assert asyncio.run(main()) == [i / 10 for i in range(10)]
    assert srv.stats()["requests"] == 10


# -- cache ---------------------------------------------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_failures_are_not_cached(srv: RunningServer, tmp_path: Any) -> None:
    options = opts(srv, models__cache_path=str(tmp_path / "calls.sqlite"))
    rows = [{"model_sample": f"s{i}", "item": {"script": {"result": i / 4}}} for i in range(4)]
    rows.append({"model_sample": "bad", "item": {"script": {"content": "not json"}}})
    first = graders.compile(score_grader(), options).run_many(rows)
    assert srv.stats()["requests"] == 5
    srv.reset()
    second = graders.compile(score_grader(), options).run_many(rows)
    assert [r.model_dump() | {"metadata": None} for r in second] == [r.model_dump() | {"metadata": None} for r in first]
    assert [r.details.get("cache") for r in second] == ["hit"] * 4 + [None]
    assert second[0].model_dump()["metadata"]["token_usage"] == first[0].model_dump()["metadata"]["token_usage"]
    assert srv.stats()["requests"] == 1  # only the parse failure is asked again
    srv.reset()
    changed = opts(srv, models__cache_path=str(tmp_path / "calls.sqlite"), score_model__range_in_schema=False)
    graders.compile(score_grader(), changed).run_many(rows[:1])
    assert srv.stats()["requests"] == 1  # the schema is part of the key


# -- opt-in: the local llama.cpp judge (optional extra) ------------------------------------------------------------


@pytest.mark.local_judge
def test_local_judge_answers_well_formed_responses() -> None:
    """`graders judge serve`'s server (Gemma 3 270M via llama.cpp): a plumbing check, so only the shape is judged."""
    from graders.evaluators.model.judge import MODEL_ALIAS, LocalJudge, missing_extra

    problem = missing_extra()
    if problem:
        pytest.skip(f"local judge extra not installed: {problem}")
    with LocalJudge() as judge:
        options = Options().with_values({"models.base_url": judge.base_url, "models.timeout_s": 120, "models.max_retries": 0})
        grader = score_grader(MODEL_ALIAS, rng=[0, 10], sampling_params={"max_completions_tokens": 200, "temperature": 0})
        grader["input"] = [{"role": "user", "content": "Rate this answer to 'capital of France?' from 0 to 10: {{ sample.output_text }}"}]
        label = label_grader(MODEL_ALIAS, sampling_params={"max_tokens": 200, "temperature": 0})
        label["input"] = [{"role": "user", "content": "Label the tone of: {{ sample.output_text }}"}]
        multi = {"type": "multi", "graders": {"score": grader, "tone": label}, "calculate_output": "score + tone"}
        resp = graders.run(multi, "Paris, obviously!", {}, options=options)
    wire = resp.model_dump()
    allowed = {"model_grader_parse_error", "model_grader_exceeded_max_tokens_error"}  # a 270M model may ramble
    assert not {k for k, v in wire["metadata"]["errors"].items() if v and not k.endswith("_details")} - allowed
    assert 0.0 <= wire["sub_rewards"]["score"] <= 10.0 and wire["sub_rewards"]["tone"] in (0.0, 1.0)
    assert set(wire["model_grader_token_usage_per_model"]) and wire["metadata"]["token_usage"]["total_tokens"] > 0
    assert wire["metadata"]["sampled_model_name"]
