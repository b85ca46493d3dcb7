"""Rate limits, the 429 pause, Azure endpoints, the lean client's HTTP framing, visible judges and the per-model
counters, against the real chat server process (`tests/servers/chat_server.py`).

The RPM and TPM tests each pace a 30 s run; both runs start together when the module's first test asks for them
(`paced_runs`), so the module costs about 30 s, not 60.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import graders
from graders import Options
from graders.transport import STATS, RateLimits, Route, estimate_tokens, resolve_limits, resolve_route
from servers.chat_server import RunningServer

FAST = {"models.timeout_s": 5.0, "models.max_retries": 2, "models.backoff_s": 0.01, "models.backoff_max_s": 2.0}
WINDOW_S = 30.0
RPM = 1200  # 20 requests/s: 600 paced requests in the window
TPM = 60_000  # 1,000 tokens/s at 100 tokens per reply: 300 paced requests in the window


def grader(model: str = "judge", **extra: Any) -> dict[str, Any]:
    return {
        "type": "score_model",
        "name": "judge",
        "model": model,
        "input": [{"role": "user", "content": "Answer: {{ sample.output_text }} #script {{ item.script }}"}],
        **extra,
    }


def options(base_url: str, **values: Any) -> Options:
    return Options().with_values({"models.base_url": base_url, **FAST, **values})


def rows(n: int, script: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"model_sample": f"s{i}", "item": {"script": script}} for i in range(n)]


def flags(resp: graders.GraderRunResponse) -> dict[str, Any]:
    return {k: v for k, v in resp.model_dump()["metadata"]["errors"].items() if v}


# -- requests and tokens per minute --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paced_runs() -> Any:
    """One server; an RPM-limited batch and a TPM-limited batch (two keys, so two endpoints) run at once, each
    sized to last `WINDOW_S`; yields the server's arrival times per key and the responses."""
    with RunningServer("--latency", "0.02") as srv:
        results: dict[str, list[graders.GraderRunResponse]] = {}

        def run(key: str, values: dict[str, Any], batch: list[dict[str, Any]], params: dict[str, Any]) -> None:
            opts = options(srv.base_url, **{"models.api_key": key, **values})
            with graders.compile(grader(sampling_params=params), opts) as compiled:
                results[key] = compiled.run_many(batch)

        # TPM: each request is estimated at ~14 + 194 tokens (text / 4 + the completion cap) and its reply
        # reports 100: only the correction from usage brings the pace to the limit.
        rpm_rows = rows(int(RPM / 60 * WINDOW_S), {"result": 1})
        tpm_rows = rows(int(TPM / 100 / 60 * WINDOW_S), {"result": 1, "usage": [40, 60, 0]})
        threads = [
            threading.Thread(target=run, args=("sk-rpm", {"models.max_rpm": RPM}, rpm_rows, {})),
            threading.Thread(
                target=run, args=("sk-tpm", {"models.max_tpm": TPM}, tpm_rows, {"max_completions_tokens": 194})
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        arrivals: dict[str, list[float]] = {}
        for at, credential in srv.arrivals():
            arrivals.setdefault(str(credential).removeprefix("Bearer "), []).append(at)
        yield arrivals, results


def _most_in(times: list[float], window_s: float) -> int:
    """The most arrivals within any `window_s`."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _check_pace(times: list[float], per_minute: float, cost: float) -> None:
    """Measured over the run, the pace is the limit within 10 %; the burst is at most 1/60 of the limit."""
    times = sorted(times)
    elapsed = times[-1] - times[0]
    assert elapsed >= WINDOW_S * 0.85, elapsed
    rate = (len(times) - 1) * cost / elapsed * 60
    assert abs(rate / per_minute - 1) <= 0.10, (rate, per_minute)
    burst = per_minute / 60 / cost  # requests: one second's share goes at once, then the pace
    assert _most_in(times, 0.25) <= burst * 1.25 + 2  # (+2: requests reach the server in clumps)
    assert _most_in(times, 1.0) <= burst * 2 + 2


def test_max_rpm_paces_requests_per_endpoint(paced_runs: Any) -> None:
    arrivals, results = paced_runs
    assert all(r.reward == 1.0 for r in results["sk-rpm"])
    _check_pace(arrivals["sk-rpm"], RPM, 1)


def test_max_tpm_paces_tokens_corrected_from_usage(paced_runs: Any) -> None:
    arrivals, results = paced_runs
    assert all(r.reward == 1.0 for r in results["sk-tpm"])
    assert all(r.model_dump()["metadata"]["token_usage"]["total_tokens"] == 100 for r in results["sk-tpm"])
    _check_pace(arrivals["sk-tpm"], TPM, 100)


def test_token_estimate_is_text_over_four_plus_the_completion_cap() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}, {"role": "user", "content": [{"type": "text", "text": "y" * 40}]}]}
    assert estimate_tokens({**body, "max_completion_tokens": 50}) == 110 + 50
    assert estimate_tokens({**body, "max_tokens": 7}) == 110 + 7
    assert estimate_tokens(body) == 110 + 256  # no cap: an assumed completion
    assert estimate_tokens({"input": ["abcd" * 10, "ab" * 10]}) == 15


def test_limits_per_endpoint_entry() -> None:
    """An entry with limits of its own is a budget of its own; one that moves a model elsewhere inherits none."""
    opts = Options().with_values(
        {
            "models.max_rpm": 100,
            "models.max_tpm": 9000,
            "models.endpoints": [
                {"model": "big-*", "max_tpm": 500},
                {"model": "local", "base_url": "http://127.0.0.1:8000/v1"},
            ],
        }
    ).models
    assert resolve_limits("gpt", opts) == RateLimits(100, 9000, "")
    assert resolve_limits("big-one", opts) == RateLimits(100, 500, "big-*")
    assert resolve_limits("local", opts) == RateLimits(None, None, "")


def test_429_pauses_the_whole_endpoint() -> None:
    """A 429 with Retry-After holds every request to that endpoint, not only the one that got it."""
    with RunningServer() as srv:
        opts = options(srv.base_url)

        async def main() -> tuple[graders.GraderRunResponse, list[graders.GraderRunResponse]]:
            with graders.compile(grader(), opts) as compiled:
                script = {"fail": {"status": 429, "times": 1, "retry_after": 1.0, "key": "pause"}, "result": 0.5}
                first = asyncio.ensure_future(compiled.arun("first", {"script": script}))
                await asyncio.sleep(0.3)  # the 429 is back: the endpoint is paused
                others = await asyncio.gather(*(compiled.arun(f"o{i}", {"script": {"result": 0.5}}) for i in range(5)))
                return await first, list(others)

        first, others = asyncio.run(main())
        times = sorted(t for t, _ in srv.arrivals())
        assert first.reward == 0.5 and first.details["attempts"] == 2
        assert [r.reward for r in others] == [0.5] * 5 and all(r.details["attempts"] == 1 for r in others)
        assert len(times) == 7 and all(t >= times[0] + 0.95 for t in times[1:])  # nothing went out in the pause
        assert all(r.details["wait_s"] >= 0.5 for r in others)


# -- Azure OpenAI ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["lean", "openai_sdk"])
def test_azure_endpoint_deployment_url_api_version_and_api_key(transport: str) -> None:
    """api_style azure: `{base}/openai/deployments/{deployment}/chat/completions?api-version=...`, signed with
    `api-key` and no Authorization header; the deployment is the model's name unless an entry names one."""
    with RunningServer() as srv:
        base = {"models.transport": transport, "models.api_style": "azure", "models.api_key": "az-secret"}
        opts = options(srv.root, **base)
        resp = graders.run(grader("gpt-4o"), "x", {"script": {"result": 0.7}}, options=opts)
        assert resp.reward == 0.7 and not flags(resp)
        stats = srv.stats()
        assert (stats["deployment"], stats["api_key"], stats["api_version"]) == ("gpt-4o", "az-secret", "2024-10-21")
        assert stats["authorization"] is None and srv.arrivals()[0][1] == "az-secret"
        entry = {"model": "gpt-4o", "deployment": "prod-judge", "api_version": "2025-01-01-preview"}
        opts = options(srv.root, **base, **{"models.endpoints": [entry]})
        assert graders.run(grader("gpt-4o"), "x", {"script": {"result": 0.2}}, options=opts).reward == 0.2
        stats = srv.stats()
        assert (stats["deployment"], stats["api_version"]) == ("prod-judge", "2025-01-01-preview")
        keyless = options(srv.root, **{**base, "models.api_key": None})
        graders.run(grader("gpt-4o"), "x", {"script": {"result": 1}}, options=keyless)
        assert srv.stats()["api_key"] in (None, "no-key")  # no key set: none sent (the SDK sends a placeholder)


def test_a_routed_server_inherits_no_azure_style() -> None:
    opts = Options().with_values(
        {"models.api_style": "azure", "models.base_url": "https://r.openai.azure.com", "models.api_key": "az",
         "models.endpoints": [{"model": "local", "base_url": "http://127.0.0.1:8000/v1"}]}
    ).models  # fmt: skip
    assert resolve_route("gpt-4o", opts) == Route("https://r.openai.azure.com", "az", "azure", "2024-10-21", "gpt-4o")
    assert resolve_route("local", opts) == Route("http://127.0.0.1:8000/v1", "")
    assert resolve_route("gpt-4o", opts).target().headers == {"api-key": "az"}
    assert resolve_route("local", opts).target().headers == {"Authorization": "Bearer no-key"}


def test_endpoint_urls_must_be_http_and_keys_single_line() -> None:
    for name, value in (("models.base_url", "ftp://judge"), ("models.endpoints", [{"model": "m", "base_url": "judge:80"}])):
        with pytest.raises(graders.OptionError, match="must be an http:// or https:// URL"):
            Options().with_values({name: value})
    opts = Options().with_values({"models.base_url": "http://127.0.0.1:9/v1", "models.api_key": "sk\r\nX-Evil: 1"})
    resp = graders.run(grader(), "x", {"script": {}}, options=opts)
    assert "key contains a line break" in flags(resp)["model_grader_server_error_details"]


# -- the lean client's HTTP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "gzip", "close"])
def test_lean_client_reads_chunked_gzip_and_close_delimited_replies(framing: str) -> None:
    with RunningServer() as srv:
        resp = graders.run(grader(), "x", {"script": {"result": 0.3, "framing": framing}}, options=options(srv.base_url))
        assert resp.reward == 0.3 and not flags(resp)
        again = graders.run(grader(), "y", {"script": {"result": 0.6}}, options=options(srv.base_url))
        assert again.reward == 0.6


def test_lean_client_resends_once_when_a_kept_alive_connection_was_dropped() -> None:
    """A server may close an idle keep-alive connection just as a request goes out on it: sent again on a fresh
    connection inside the same attempt (no answer had started, so nothing was processed twice)."""
    with RunningServer() as srv:
        opts = options(srv.base_url, **{"models.max_retries": 0})
        with graders.compile(grader(), opts) as compiled:
            assert compiled.run("warm", {"script": {"result": 1}}).reward == 1.0  # a connection to reuse
            resp = compiled.run("x", {"script": {"result": 0.4, "drop": {"times": 1, "key": "stale"}}})
        assert resp.reward == 0.4 and resp.details["attempts"] == 1
        assert len(srv.arrivals()) == 3


# -- visible judges and counters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["lean", "openai_sdk"])
def test_details_keep_messages_raw_reply_result_attempts_and_latency(transport: str) -> None:
    with RunningServer() as srv:
        opts = options(srv.base_url, **{"models.transport": transport})
        script = {"fail": {"status": 503, "times": 1, "key": "vis"}, "result": 3}
        resp = graders.run(grader(), "Paris", {"script": script}, options=opts)
    details = resp.details
    assert details["messages"] == [{"role": "user", "content": f"Answer: Paris #script {_json(script)}"}]
    assert details["raw"].startswith('{"steps": [') and details["result"] == 3 and resp.reward == 1.0
    assert details["attempts"] == 2 and 0 < details["latency_s"] < 5 and details["wait_s"] >= 0
    wire = resp.model_dump()
    assert not {"details", "messages", "raw", "latency_s"} & set(wire) and "latency_s" not in str(wire)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_transport_stats_count_requests_retries_failures_and_tokens_per_model() -> None:
    with RunningServer() as srv:
        opts = options(srv.base_url, **{"models.max_retries": 1})
        before = STATS.snapshot()
        ok = {"fail": {"status": 429, "times": 1, "retry_after": 0.05, "key": "st"}, "result": 1, "usage": [7, 3, 2]}
        graders.run(grader("counted"), "a", {"script": ok}, options=opts)
        graders.run(grader("counted"), "b", {"script": {"fail": {"status": 500, "key": "st-down"}}}, options=opts)
        delta = STATS.since(before)["counted"]
    assert {k: delta[k] for k in ("requests", "retries", "failures", "rate_limited")} == {
        "requests": 4, "retries": 2, "failures": 1, "rate_limited": 1,
    }  # fmt: skip
    assert (delta["prompt_tokens"], delta["completion_tokens"], delta["total_tokens"], delta["cached_tokens"]) == (7, 3, 10, 2)
    assert delta["latency_s"] > 0
