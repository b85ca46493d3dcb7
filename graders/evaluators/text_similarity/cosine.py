"""`cosine` (spec §7.3, U25): the cosine of two embeddings, clamped to [0, 1].

Embeddings come from an OpenAI-compatible `/embeddings` endpoint through the same shared clients, concurrency
limit and transient-only retries as the model graders (`evaluators/model/client.py`; the endpoint is routed by
`models.*` like a grader model), or from a local `Embedder` passed to `set_embedder`. Texts are batched per
request and cached for the life of the metric, so a reference shared by many rows is embedded once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Protocol

from openai.types import CreateEmbeddingResponse

from ...options import Options
from ..model.client import DEFAULT_BASE_URL, ModelCallError, RetryPolicy, endpoint_for, resolve_route
from ...response import add_usage
from .base import Metric, MetricUnavailable


class Embedder(Protocol):
    """A local embedding model (e.g. a sentence-transformers adapter): texts in, one vector per text out."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The dot product of the unit-normalised vectors (§7.2); 0.0 when either vector is all zeros."""
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class Cosine(Metric):
    names = ("cosine",)
    async_native = True

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.cosine
        self._model = opts.model
        self._batch = opts.batch_size
        self._flag = opts.unavailable_flag
        self.report_usage = opts.report_usage
        self._route = resolve_route(opts.model, options.models)
        self._configured = bool(self._route.api_key) or self._route.base_url != DEFAULT_BASE_URL
        self._policy = RetryPolicy.from_options(options.models)
        self._concurrency = options.models.max_concurrency
        self._embedder: Embedder | None = None
        self._cache: dict[str, list[float]] = {}
        self.signature.update({"model": opts.model, "endpoint": self._route.base_url, "similarity": "cosine, clamped to [0, 1]"})

    def set_embedder(self, embedder: Embedder, name: str) -> None:
        """Use a local embedder instead of the endpoint; `name` is recorded in the signature."""
        self._embedder = embedder
        self._cache.clear()
        self.signature.update({"model": name, "endpoint": "local embedder"})

    def score(self, hypothesis: str, reference: str) -> float:
        raise NotImplementedError("cosine is async-native; the evaluator calls ascore_many")

    async def ascore_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        await self._embed_missing([t for pair in pairs for t in pair])
        return [cosine(self._cache[h], self._cache[r]) for h, r in pairs]

    async def ascore_many_with_usage(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, dict[str, Any] | None]]:
        """U25 `report_usage`: each pair's texts in their own request, so its token usage is exactly its own
        (texts already embedded cost nothing and report none)."""
        async def one(pair: tuple[str, str]) -> tuple[float, dict[str, Any] | None]:
            usage = await self._embed_missing(list(pair))
            return cosine(self._cache[pair[0]], self._cache[pair[1]]), usage

        return list(await asyncio.gather(*(one(p) for p in pairs)))

    async def _embed_missing(self, texts: list[str]) -> dict[str, Any] | None:
        """Embed the texts not cached yet; returns `{model: usage}` summed over the requests made, if any."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if not missing:
            return None
        if self._embedder is not None:
            for text, vector in zip(missing, self._embedder.embed(missing)):
                self._cache[text] = list(vector)
            return None
        if not self._configured:
            raise MetricUnavailable(
                self._flag,
                "cosine needs an embeddings client: set OPENAI_API_KEY (OpenAI), models.base_url / OPENAI_BASE_URL "
                "(any OpenAI-compatible server), or a local embedder (U25)",
            )
        endpoint = endpoint_for(self._route, self._concurrency)
        chunks = [missing[i : i + self._batch] for i in range(0, len(missing), self._batch)]
        results = await asyncio.gather(*(self._request(endpoint, chunk) for chunk in chunks))
        usage: dict[str, Any] = {}
        for chunk, (vectors, model, counts) in zip(chunks, results):
            self._cache.update(zip(chunk, vectors))
            add_usage(usage, model, counts)
        return usage

    async def _request(self, endpoint: Any, texts: list[str]) -> tuple[list[list[float]], str, dict[str, int]]:
        body = {"model": self._model, "input": texts, "encoding_format": "float"}
        try:
            reply, _ = await endpoint.post("/embeddings", body, CreateEmbeddingResponse, self._policy)
        except ModelCallError as exc:
            raise MetricUnavailable("model_grader_server_error", f"embeddings request failed: {exc}") from None
        vectors = sorted(reply.data, key=lambda d: d.index)
        if len(vectors) != len(texts):
            raise MetricUnavailable("model_grader_server_error", f"the embeddings reply has {len(vectors)} vectors for {len(texts)} texts")
        counts = {"prompt_tokens": reply.usage.prompt_tokens, "total_tokens": reply.usage.total_tokens} if reply.usage else {}
        return [list(d.embedding) for d in vectors], reply.model or self._model, counts
