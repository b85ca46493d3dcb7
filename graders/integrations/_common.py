"""What every RL-framework adapter shares: (sample, item) lists graded in bulk, and errored samples made visible.

A framework hands over parallel lists (completions, prompts, labels, extra columns). `rows` turns them into engine
rows (a text becomes `model_sample`, a dict a structured `sample`), `RewardScorer` grades them with `run_many` /
`arun_many`, and `RewardBatch` says which rewards came from a failed grade: those get `error_reward` (default 0.0)
and an `errored` marker of 1.0 in the extras, and the first failure of a batch is logged, so a broken grader never
looks like a policy that scores zero.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import CompiledGrader
from ..options import Options
from ..response import FLAG_KEYS, GraderRunResponse

log = logging.getLogger("graders.integrations")


@dataclass(frozen=True)
class ItemMapping:
    """How a framework's columns become the grader's `item`, and what an errored sample is worth."""

    label_key: str = "label"
    """`item` key that receives the label (the dataset's reference answer). A label that is an object is merged
    into `item` instead, so `{{ item.answer }}` works for structured labels."""
    prompt_key: str | None = "prompt"
    """`item` key that receives the prompt; None leaves it out."""
    error_reward: float = 0.0
    """Reward given to a sample whose grade failed (it is also marked `errored` in the extras)."""

    def item(self, label: Any, prompt: Any = None) -> dict[str, Any]:
        item: dict[str, Any] = dict(label) if isinstance(label, Mapping) else {self.label_key: label}
        if self.prompt_key is not None and prompt is not None:
            item.setdefault(self.prompt_key, prompt)
        return item


def rows(samples: Sequence[Any], items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Engine rows: a string sample is `model_sample`, a mapping a structured `sample` (tool calls, choices)."""
    if len(samples) != len(items):
        raise ValueError(f"{len(samples)} samples but {len(items)} items")
    return [
        {"sample": s, "item": i} if isinstance(s, Mapping) else {"model_sample": s, "item": i}
        for s, i in zip(samples, items)
    ]


@dataclass(frozen=True)
class RewardBatch:
    """The graded rows of one call: rewards with errored samples replaced, and per-sample extras for logging."""

    rewards: list[float]
    errored: list[bool]
    sub_rewards: dict[str, list[float]]
    responses: list[GraderRunResponse]

    def extras(self) -> dict[str, list[float]]:
        """Numeric per-sample columns, the same keys for every batch of one grader (loggers stack them)."""
        out: dict[str, list[float]] = {"errored": [1.0 if e else 0.0 for e in self.errored]}
        for key, values in self.sub_rewards.items():
            out[f"sub_reward/{key}"] = values
        return out


class RewardScorer:
    """One compiled grader scoring framework batches; shared by the adapters and by the server's `/get_reward`."""

    def __init__(self, grader: Any, options: Options | None = None, mapping: ItemMapping | None = None) -> None:
        self.compiled = grader if isinstance(grader, CompiledGrader) else CompiledGrader(grader, options)
        self.mapping = mapping or ItemMapping()
        self._sub_keys = _sub_reward_keys(self.compiled)

    def score(self, batch: list[dict[str, Any]]) -> RewardBatch:
        return self._collect(self.compiled.run_many(batch))

    async def ascore(self, batch: list[dict[str, Any]]) -> RewardBatch:
        return self._collect(await self.compiled.arun_many(batch))

    def _collect(self, responses: list[GraderRunResponse]) -> RewardBatch:
        fallback = float(self.mapping.error_reward)
        errored = [r.failed for r in responses]
        rewards = [fallback if e else float(r.reward) for r, e in zip(responses, errored)]
        subs = {key: [float(r.sub_rewards.get(key, fallback)) for r in responses] for key in self._sub_keys}
        failures = [r for r in responses if r.failed]
        if failures:
            first = failures[0]
            flags = ", ".join(k for k in FLAG_KEYS if first.errors.get(k))
            log.warning(
                "%s: %d of %d samples failed to grade and got reward %g (first: %s: %s)",
                self.compiled.name, len(failures), len(responses), fallback, flags, first.outcome.error_text(),
            )
        return RewardBatch(rewards, errored, subs, responses)

    def close(self) -> None:
        self.compiled.close()


def _sub_reward_keys(compiled: CompiledGrader) -> list[str]:
    """The `sub_rewards` keys a `multi` reports (U42), known before any sample is graded."""
    graders = getattr(compiled.config, "graders", None)
    if not graders:
        return []
    by_name = compiled.options.multi.sub_rewards_keys == "name"
    return [(sub.name or key) if by_name else key for key, sub in graders.items()]
