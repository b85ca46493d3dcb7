"""A grader as OpenRLHF's reward: the file-mode `reward_func` and the body of the remote `/get_reward` endpoint.

OpenRLHF calls `reward_func(queries, prompts, labels)` (a `--reward.remote_url` ending in `.py`, formerly
`--remote_rm_url`; one sample at a time, from a thread, no keyword arguments) or POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` to a reward server, and reads back `rewards` (for the
advantage), `scores` (for dynamic filtering) and `extra_logs` (numeric per-sample columns it stacks and logs).
It must always get numbers back (an exception leaves the reward None and fails the step later), so a failed grade
is `error_reward` with `extra_logs.errored` 1.0.

Each `query` is the decoded prompt and response tokens with special tokens kept
(`tokenizer.decode(prompt_ids + response_ids, skip_special_tokens=False)`), so the response is the query with the
prompt stripped and the end-of-sequence tokens removed from its tail. `labels` are the dataset's `label_key`
column; a label becomes `item["label"]` (an object label is merged into `item`) and the prompt `item["prompt"]`.
`sample=` and `item=` pick other fields by path among `response`, `query`, `prompt` and `label`.

    # reward.py, passed as --reward.remote_url reward.py
    from graders.integrations.openrlhf import make_reward
    reward_func = make_reward("grader.json")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import CompiledGrader
from ._common import FieldMap, GraderSource, ItemMapping, ItemSpec, OptionsLike, RewardBatch, RewardScorer, check_mapping, compile_grader

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


FIELDS = ("response", "query", "prompt", "label")
"""Per-sample fields a mapping path may start with: the response (the query without prompt and end tokens), the
query as sent, the prompt and the label."""


@dataclass(frozen=True)
class OpenRLHFMapping(ItemMapping):
    end_tokens: tuple[str, ...] = END_TOKENS
    """Tokens stripped (repeatedly) from the end of each response before it is graded."""
    sample: str = "response"
    """Path of the sample among `FIELDS`."""
    item: ItemSpec = None
    """None: the label (an object label merged) and the prompt, under `label_key` and `prompt_key`; else a path
    whose value is the item, or `{item_key: path}`."""

    def field_map(self) -> FieldMap:
        return FieldMap("OpenRLHF", self.sample, self.item, FIELDS, self._label_items)

    def _label_items(self, fields: Mapping[str, Sequence[Any]], n: int) -> list[dict[str, Any]]:
        return [self.label_item(label, prompt) for label, prompt in zip(fields["label"], fields["prompt"])]


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

    def __init__(self, grader: GraderSource, options: OptionsLike = None, mapping: OpenRLHFMapping | None = None) -> None:
        self.mapping = mapping or OpenRLHFMapping()
        self.fields = self.mapping.field_map()
        compiled = grader if isinstance(grader, CompiledGrader) else compile_grader(grader, options)
        self.scorer = RewardScorer(compiled, self.mapping.error_reward)

    def batch(self, queries: Sequence[str], prompts: Sequence[Any] | None, labels: Sequence[Any] | None) -> list[Any]:
        n = len(queries)
        prompts = list(prompts) if prompts is not None else [None] * n
        labels = list(labels) if labels is not None else [None] * n
        if len(prompts) != n or len(labels) != n:
            raise ValueError(f"{n} queries, {len(prompts)} prompts and {len(labels)} labels: the lists must be as long")
        ends = self.mapping.end_tokens
        responses = [response_text(q, p if isinstance(p, str) else None, ends) for q, p in zip(queries, prompts)]
        return self.fields.rows({"response": responses, "query": list(queries), "prompt": prompts, "label": labels}, n)

    @staticmethod
    def result(scored: RewardBatch) -> dict[str, Any]:
        return {"rewards": scored.rewards, "scores": scored.rewards, "extra_logs": scored.extras()}

    def __call__(self, queries: Sequence[str], prompts: Sequence[Any], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        return self.result(self.scorer.score(self.batch(queries, prompts, labels)))

    async def aget_reward(self, queries: Sequence[str], prompts: Sequence[Any] | None, labels: Sequence[Any] | None) -> dict[str, Any]:
        return self.result(await self.scorer.ascore(self.batch(queries, prompts, labels)))

    def close(self) -> None:
        self.scorer.close()


_MAPPING = ("label_key", "prompt_key", "error_reward", "end_tokens", "sample", "item")


def make_reward(grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> OpenRLHFReward:
    """OpenRLHF's `reward_func(queries, prompts, labels, **kwargs)` for `grader` (a config, a JSON file path or a
    compiled grader). `mapping` sets `OpenRLHFMapping` fields: `label_key`, `prompt_key`, `error_reward`,
    `end_tokens`, `sample`, `item`. The config and the mapping are validated now, so a bad one fails before
    training starts."""
    check_mapping("OpenRLHF", mapping, _MAPPING)
    if "end_tokens" in mapping:
        mapping["end_tokens"] = tuple(mapping["end_tokens"])
    return OpenRLHFReward(grader, options, OpenRLHFMapping(**mapping))
