"""`cosine` (§7.3, U25): the cosine of two embeddings, clamped to [0, 1].

Embeddings come from an OpenAI-compatible `/embeddings` endpoint through `graders.transport`, like the model
graders' calls (the same routing by `models.*`, shared concurrency limit and transient-only retries), or from a
local `Embedder` plugged in with `graders.extend.set_embedder`. Texts are batched per request and cached for the
life of the metric, so a reference shared by many rows is embedded once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from ...errors import MetricUnavailable, ModelCallError
from ...extend import Embedder
from ...options import Options
from ...response import Usage, add_usage
from ...transport import ModelClient
from .base import AsyncMetric


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The dot product of the unit-normalised vectors (§7.2); 0.0 when either vector is all zeros."""
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class Cosine(AsyncMetric):
    names = ("cosine",)

    def __init__(self, metric: str, options: Options) -> None:
        super().__init__(metric, options)
        opts = options.text_similarity.cosine
        self._model = opts.model
        self._batch = opts.batch_size
        self._flag = opts.unavailable_flag
        self.report_usage = opts.report_usage
        self._client = ModelClient(opts.model, options.models)
        self._embedder: Embedder | None = None
        self._cache: dict[str, list[float]] = {}
        self.signature.update({"model": opts.model, "endpoint": self._client.route.location, "similarity": "cosine, clamped to [0, 1]"})

    def set_embedder(self, embedder: Embedder, name: str) -> None:
        """Use a local embedder instead of the endpoint (`graders.extend.set_embedder` is the public way in)."""
        self._embedder = embedder
        self._cache.clear()
        self.signature = {**self.signature, "model": name, "endpoint": "local embedder"}

    async def ascore_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        await self._embed_missing([t for pair in pairs for t in pair])
        return [cosine(self._cache[h], self._cache[r]) for h, r in pairs]

    async def ascore_many_with_usage(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, dict[str, Usage] | None]]:
        """U25 `report_usage`: each pair's texts in their own request, so its token usage is exactly its own
        (texts already embedded cost nothing and report none)."""
        async def one(pair: tuple[str, str]) -> tuple[float, dict[str, Usage] | None]:
            usage = await self._embed_missing(list(pair))
            return cosine(self._cache[pair[0]], self._cache[pair[1]]), usage

        return list(await asyncio.gather(*(one(p) for p in pairs)))

    async def _embed_missing(self, texts: list[str]) -> dict[str, Usage] | None:
        """Embed the texts not cached yet; returns `{model: usage}` summed over the requests made, if any."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if not missing:
            return None
        if self._embedder is not None:
            for text, vector in zip(missing, self._embedder.embed(missing)):
                self._cache[text] = list(vector)
            return None
        if not self._client.route.configured:
            raise MetricUnavailable(
                "cosine needs an embeddings client: set OPENAI_API_KEY (OpenAI), models.base_url / OPENAI_BASE_URL "
                "(any OpenAI-compatible server), or a local embedder (U25)",
                self._flag,
            )
        chunks = [missing[i : i + self._batch] for i in range(0, len(missing), self._batch)]
        results = await asyncio.gather(*(self._request(chunk) for chunk in chunks))
        usage: dict[str, Usage] = {}
        for chunk, (vectors, model, counts) in zip(chunks, results):
            self._cache.update(zip(chunk, vectors))
            add_usage(usage, model, counts)
        return usage

    async def _request(self, texts: list[str]) -> tuple[list[list[float]], str, Usage]:
        body = {"model": self._model, "input": texts, "encoding_format": "float"}
        try:
            reply = (await self._client.call("/embeddings", body)).json
        except ModelCallError as exc:
            raise MetricUnavailable(f"embeddings request failed: {exc.text}", "model_grader_server_error") from None
        data = reply.get("data")
        items = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
        ordered = [d.get("embedding") for d in sorted(items, key=lambda d: d.get("index", 0))]
        vectors: list[list[float]] = [v for v in ordered if isinstance(v, list)]
        if len(vectors) != len(texts) or len(ordered) != len(texts):
            raise MetricUnavailable(
                f"the embeddings reply has {len(vectors)} vectors for {len(texts)} texts", "model_grader_server_error"
            )
        usage = reply.get("usage")
        counts: Usage = {}
        if isinstance(usage, dict):
            counts = {k: usage[k] for k in ("prompt_tokens", "total_tokens") if isinstance(usage.get(k), int)}
        model = reply.get("model")
        return vectors, model if isinstance(model, str) and model else self._model, counts
