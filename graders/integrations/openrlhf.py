"""A grader as OpenRLHF's reward: the file-mode `reward_func` and the body of the remote `/get_reward` endpoint.

OpenRLHF calls `reward_func(queries, prompts, labels)` (a `--remote_rm_url` ending in `.py`) or POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` to a reward server, and reads back `rewards` (for the
advantage), `scores` (for dynamic filtering) and `extra_logs` (numeric per-sample columns it stacks and logs).

Each `query` is the decoded prompt and response tokens with special tokens kept
(`tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)`), so the response is the query with the
prompt stripped and the end-of-sequence tokens removed from its tail. `labels` are the dataset's `label_key`
column; a label becomes `item["label"]` (an object label is merged into `item`) and the prompt `item["prompt"]`.

    # reward.py, passed as --remote_rm_url reward.py
    from graders.integrations.openrlhf import make_reward
    reward_func = make_reward("grader.json")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import Options
from ._common import ItemMapping, RewardBatch, RewardScorer, rows

END_TOKENS: tuple[str, ...] = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "<eos>",
    "</s>",
    "<｜end▁of▁sentence｜>",
)
"""End-of-sequence and padding tokens of common chat models, as they appear in a decoded query."""


@dataclass(frozen=True)
class OpenRLHFMapping(ItemMapping):
    end_tokens: tuple[str, ...] = END_TOKENS
    """Tokens stripped (repeatedly) from the end of each response before it is graded."""


def response_text(query: str, prompt: str | None, end_tokens: Sequence[str] = END_TOKENS) -> str:
    """The model's response inside an OpenRLHF query: after the prompt, without trailing end tokens."""
    text = query
    if prompt:
        at = query.find(prompt)
        if at != -1:
            text = query[at + len(prompt) :]
    while True:
        tail = text.rstrip()  # whitespace after an end token is the chat template's, not the model's
        token = next((t for t in end_tokens if t and tail.endswith(t)), None)
        if token is None:
            return text
        text = tail[: -len(token)]


class OpenRLHFReward:
    """Callable as OpenRLHF's file-mode `reward_func`; `aget_reward` serves the same from an event loop."""

    def __init__(self, grader: Any, options: Options | None = None, mapping: OpenRLHFMapping | None = None) -> None:
        self.mapping = mapping or OpenRLHFMapping()
        self.scorer = RewardScorer(grader, options, self.mapping)

    def batch(self, queries: Sequence[str], prompts: Sequence[Any] | None, labels: Sequence[Any] | None) -> list[dict[str, Any]]:
        n = len(queries)
        prompts = list(prompts) if prompts is not None else [None] * n
        labels = list(labels) if labels is not None else [None] * n
        if len(prompts) != n or len(labels) != n:
            raise ValueError(f"{n} queries, {len(prompts)} prompts and {len(labels)} labels: the lists must be as long")
        ends = self.mapping.end_tokens
        samples = [response_text(q, p if isinstance(p, str) else None, ends) for q, p in zip(queries, prompts)]
        items = [self.mapping.item(label, prompt) for label, prompt in zip(labels, prompts)]
        return rows(samples, items)

    @staticmethod
    def result(scored: RewardBatch) -> dict[str, Any]:
        return {"rewards": scored.rewards, "scores": scored.rewards, "extra_logs": scored.extras()}

    def __call__(self, queries: Sequence[str], prompts: Sequence[Any], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        return self.result(self.scorer.score(self.batch(queries, prompts, labels)))

    async def aget_reward(self, queries: Sequence[str], prompts: Sequence[Any] | None, labels: Sequence[Any] | None) -> dict[str, Any]:
        return self.result(await self.scorer.ascore(self.batch(queries, prompts, labels)))

    def close(self) -> None:
        self.scorer.close()


def make_reward(grader: Any, *, options: Options | None = None, **mapping: Any) -> OpenRLHFReward:
    """OpenRLHF's `reward_func(queries, prompts, labels, **kwargs)` for `grader` (a config, a JSON file path or a
    compiled grader). `mapping` sets `OpenRLHFMapping` fields: `label_key`, `prompt_key`, `error_reward`,
    `end_tokens`. The config is validated now, so a bad grader fails before training starts."""
    if isinstance(grader, (str, Path)):
        grader = json.loads(Path(grader).read_text(encoding="utf-8"))
    return OpenRLHFReward(grader, options, OpenRLHFMapping(**mapping))
