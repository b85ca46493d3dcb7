"""`cosine` (§7.3, U25) against a real OpenAI-compatible embeddings server process on 127.0.0.1."""

from __future__ import annotations

import math

import pytest

import graders
from graders import Options
from graders.evaluators.text_similarity.cosine import cosine
from tests.servers.chat_server import RunningServer, trigram_vector

COSINE = {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}", "evaluation_metric": "cosine"}


@pytest.fixture(scope="module")
def server():
    with RunningServer() as srv:
        yield srv


CLIENT = {"models.max_retries": 2, "models.backoff_s": 0.01}


@pytest.fixture(autouse=True, params=("lean", "openai_sdk"))
def transport(request):
    """Every test runs on both HTTP clients: `CLIENT`, which `opts` starts from, names the one (`models.transport`)."""
    CLIENT["models.transport"] = request.param
    yield request.param
    del CLIENT["models.transport"]


def opts(server, **more):
    return Options().with_values({"models.base_url": server.base_url, **CLIENT, **more})


def test_cosine_of_server_embeddings(server):
    resp = graders.run(COSINE, "the cat sat", {"r": "a cat sat"}, options=opts(server))
    expected = cosine(trigram_vector("the cat sat"), trigram_vector("a cat sat"))
    assert resp.reward == pytest.approx(expected, abs=1e-12) and 0 < expected < 1
    assert graders.run(COSINE, "same text", {"r": "same text"}, options=opts(server)).reward == pytest.approx(1.0)
    assert resp.details["metric"]["model"] == "text-embedding-3-large"


def test_batched_and_cached_within_a_run(server):
    server.reset()
    grader = graders.compile(COSINE, opts(server, **{"text_similarity.cosine.batch_size": 8}))
    rows = [{"model_sample": f"answer {i % 10}", "item": {"r": "the reference"}} for i in range(100)]
    out = grader.run_many(rows)
    assert len({round(r.reward, 12) for r in out}) >= 2
    assert server.stats()["requests"] == 2  # 11 distinct texts in batches of 8
    grader.run_many(rows)
    assert server.stats()["requests"] == 2  # all cached


def test_transient_failure_is_retried(server):
    text = 'x #script {"fail": {"status": 503, "times": 1, "key": "cos-503"}}'
    resp = graders.run(COSINE, text, {"r": "y"}, options=opts(server))
    assert not resp.failed


def test_permanent_failure_is_model_server_error(server):
    text = 'x #script {"fail": {"status": 500, "key": "cos-500"}}'
    resp = graders.run(COSINE, text, {"r": "y"}, options=opts(server))
    assert resp.reward == 0.0 and resp.errors["model_grader_server_error"] is True
    assert "after 3 attempts" in resp.errors["model_grader_server_error_details"]


def test_client_error_is_not_retried(server):
    text = 'x #script {"fail": {"status": 400, "key": "cos-400"}}'
    resp = graders.run(COSINE, text, {"r": "y"}, options=opts(server))
    assert resp.errors["model_grader_server_error"] and "attempts" not in resp.errors["model_grader_server_error_details"]


def test_no_client_configured_U25(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    resp = graders.run(COSINE, "a", {"r": "b"})
    assert resp.errors["other_error"] and "embeddings client" in resp.details["error"]
    flagged = graders.run(COSINE, "a", {"r": "b"}, options=Options().with_values({"text_similarity.cosine.unavailable_flag": "model_grader_server_error"}))
    assert flagged.errors["model_grader_server_error"]


class BagOfLetters:
    def embed(self, texts):
        return [[t.count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


def test_pluggable_local_embedder():
    """`graders.extend.set_embedder` plugs a local model into a cosine grader, or into every cosine sub-grader."""
    from graders.extend import set_embedder

    grader = graders.compile(COSINE)
    set_embedder(grader, BagOfLetters(), "bag-of-letters")
    resp = grader.run("abc", {"r": "abd"})
    assert resp.reward == pytest.approx(2 / 3) and resp.details["metric"]["model"] == "bag-of-letters"
    multi = graders.compile({"type": "multi", "graders": {"a": COSINE, "b": COSINE}, "calculate_output": "a + b"})
    set_embedder(multi, BagOfLetters(), "bag-of-letters")
    assert multi.run("abc", {"r": "abd"}).reward == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="no text_similarity cosine metric"):
        set_embedder(graders.compile({**COSINE, "evaluation_metric": "bleu"}), BagOfLetters(), "x")


def test_cosine_helper():
    assert cosine([1, 0], [0, 1]) == 0.0 and cosine([0, 0], [1, 1]) == 0.0
    assert math.isclose(cosine([1, 2], [2, 4]), 1.0)


def test_embedding_usage_reported_when_switched_U25(server):
    off = graders.run(COSINE, "usage off", {"r": "the reference text"}, options=opts(server))
    assert off.model_dump()["model_grader_token_usage_per_model"] == {}
    on = graders.run(COSINE, "usage on here", {"r": "the reference text"}, options=opts(server, **{"text_similarity.cosine.report_usage": True}))
    usage = on.model_dump()["model_grader_token_usage_per_model"]
    assert usage == {"text-embedding-3-large": {"prompt_tokens": 6, "total_tokens": 6, "completion_tokens": 0, "cached_tokens": 0}}
