"""A grader as a TRL reward function (`GRPOTrainer`, `RLOOTrainer`: `reward_funcs=[make_reward("grader.json")]`).

TRL calls each reward function as `f(prompts=…, completions=…, completion_ids=…, **kwargs)`, where `kwargs` holds
every dataset column as a list (one entry per completion) plus `trainer_state`, `log_extra` and `log_metric`, and
reads back one `float | None` per completion. None means "no score": TRL (1.6 and later) leaves that completion out
of this function's mean and gives a row on which every function returned None no advantage. So a sample whose
grade failed returns None here, never a silent 0.0.

By default the completion is the sample (a string is `model_sample`; a conversational completion, a list of
messages, becomes the structured sample of its assistant turns: the last one's content and every tool call) and
the dataset row is the item (every column, `prompt` included), which is the item an RFT grader saw. `log_extra`
gets per-completion columns (`<name>/errored`, `<name>/error` with the flags, `<name>/sub_reward/<key>` for a
`multi`) and `log_metric` the batch's errored fraction and sub-reward means, under TRL's `rewards/<name>/…`.

The returned object is a plain function named after the grader (TRL names its metrics with `__name__` and tells
sync from async with `inspect.iscoroutinefunction`), so it works from TRL 1.6 on. The sync one runs on the
trainer's thread and uses graders' background loop; the async one (`make_async_reward`) awaits the grade on TRL's
own event loop, concurrently with the trainer's other async rewards.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ._common import FieldMap, GraderSource, ItemSpec, OptionsLike, RewardBatch, RewardScorer, check_mapping, compile_grader, plain

RewardFunc = Callable[..., list[float | None]]
AsyncRewardFunc = Callable[..., Awaitable[list[float | None]]]
TRAINER_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})
"""Keyword arguments TRL adds that are not dataset columns (never part of the item)."""
_FIELDS = ("sample", "item", "name", "log")


def _row_items(fields: Mapping[str, Sequence[Any]], n: int) -> list[dict[str, Any]]:
    """The default items: each dataset row (every column and the prompt), without the completion."""
    columns = [(key, values) for key, values in fields.items() if key != "completion"]
    return [{key: v if (v := values[i]).__class__ is str else plain(v) for key, values in columns} for i in range(n)]


class TRLReward:
    """The state behind one TRL reward function: the compiled grader, its field map and how it logs."""

    def __init__(self, grader: GraderSource, options: OptionsLike, sample: str, item: ItemSpec, name: str | None, log: bool) -> None:
        self.fields = FieldMap("TRL", sample, item, None, _row_items)
        self.scorer = RewardScorer(compile_grader(grader, options), failed_as="None (no score)")
        self.name = name or self.scorer.compiled.name
        self.log = log

    def rows(self, prompts: Sequence[Any] | None, completions: Sequence[Any] | None, kwargs: Mapping[str, Any]) -> list[Any]:
        if completions is None:
            raise TypeError(f"the TRL reward {self.name!r} was called without completions=")
        n = len(completions)
        fields: dict[str, Sequence[Any]] = {"completion": completions}
        if prompts is not None:
            fields["prompt"] = prompts
        for key, values in kwargs.items():
            if key not in TRAINER_KWARGS and not isinstance(values, (str, bytes, Mapping)) and hasattr(values, "__len__") and len(values) == n:
                fields[key] = values
        return self.fields.rows(fields, n)

    def report(self, batch: RewardBatch, kwargs: Mapping[str, Any]) -> list[float | None]:
        """Log the extras where TRL keeps them, and return TRL's rewards (None for an errored sample)."""
        if self.log:
            log_extra, log_metric = kwargs.get("log_extra"), kwargs.get("log_metric")
            name, n = self.name, len(batch.errored)
            if callable(log_extra):
                log_extra(f"{name}/errored", list(batch.errored))
                log_extra(f"{name}/error", [flags or None for flags in batch.flags()])
                for key, values in batch.sub_rewards.items():
                    log_extra(f"{name}/sub_reward/{key}", values)
            if callable(log_metric) and n:
                log_metric(f"rewards/{name}/errored", sum(batch.errored) / n)
                for key, values in batch.sub_rewards.items():
                    finite = [v for v in values if math.isfinite(v)]
                    if finite:
                        log_metric(f"rewards/{name}/sub_reward/{key}/mean", sum(finite) / len(finite))
        return batch.scores()

    def close(self) -> None:
        self.scorer.close()


def _build(grader: GraderSource, options: OptionsLike, mapping: dict[str, Any]) -> TRLReward:
    check_mapping("TRL", mapping, _FIELDS)
    name = mapping.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"TRL make_reward(): name must be a non-empty string, got {name!r}")
    return TRLReward(grader, options, mapping.get("sample", "completion"), mapping.get("item"), name, bool(mapping.get("log", True)))


def make_reward(grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> RewardFunc:
    """TRL's `reward_func(prompts, completions, completion_ids, **kwargs) -> list[float | None]` for `grader` (a
    config, the path of its JSON or a compiled grader), validated now.

    `mapping`: `sample` (path of the sample, default `"completion"`; a dataset column or a dotted path into one
    also works), `item` (None: the dataset row; a path whose value is the item; or `{item_key: path}`), `name`
    (the function's and its metrics' name, default the grader's name), `log` (False: no `log_extra`/`log_metric`).
    """
    state = _build(grader, options, mapping)

    def reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        return state.report(state.scorer.score(state.rows(prompts, completions, kwargs)), kwargs)

    return _named(reward, state)


def make_async_reward(grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> AsyncRewardFunc:
    """`make_reward` as an `async def`: TRL runs it on its event loop, concurrently with its other async rewards."""
    state = _build(grader, options, mapping)

    async def reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None, completion_ids: Any = None, **kwargs: Any) -> list[float | None]:
        return state.report(await state.scorer.ascore(state.rows(prompts, completions, kwargs)), kwargs)

    return _named(reward, state)


def _named(func: Any, state: TRLReward) -> Any:
    func.__name__ = func.__qualname__ = state.name
    func.__doc__ = f"TRL reward function of the grader {state.scorer.compiled.name!r} (graders)."
    func.grader = state.scorer.compiled
    func.close = state.close
    return func
