"""A grader as verl's custom reward function (`reward.custom_reward_function.path` / `.name`).

verl's reward managers call `compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **kwargs)` once
per sample (the default `naive` manager, from an executor thread, or awaited on the reward-loop actor's event loop
when the function is a coroutine function), or, in the batch manager, `compute_score(data_sources=,
solution_strs=, ground_truths=, extra_infos=)` for a whole batch. The function made here answers both, with a dict
per sample: `score` (the reward; `error_reward`, default 0.0, where the grade failed), `errored` (1.0 there),
`error` (the flags that are set) and, for a `multi`, `sub_reward/<key>`. verl logs every key as
`reward_extra_info` and stacks each key across samples from the first sample's keys, so every sample returns the
same keys.

By default `solution_str` (the decoded response) is the sample and the item is `extra_info`'s keys with
`data_source` and `ground_truth` added, so `{{ item.ground_truth }}` works; `item={"answer": "ground_truth"}` and
dotted paths (`extra_info.meta.answer`) pick other shapes.

verl's reward-loop workers are Ray actors, each loading the reward file once: each gets a sandbox pool sized to
the CPUs Ray assigned it, or set `python.workers` in the options.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ._common import FieldMap, GraderSource, OptionsLike, RewardBatch, RewardScorer, check_mapping, compile_grader, plain

FIELDS = ("data_source", "solution_str", "ground_truth", "extra_info")
"""What verl passes for each sample (the batch form passes the same, pluralised)."""
_MAPPING = ("sample", "item", "error_reward")
ComputeScore = Callable[..., "dict[str, Any] | list[dict[str, Any]]"]


def _default_items(fields: Mapping[str, Sequence[Any]], n: int) -> list[dict[str, Any]]:
    """extra_info's keys, with data_source and ground_truth added (they win over keys of the same name)."""
    items = []
    for extra, source, truth in zip(fields["extra_info"], fields["data_source"], fields["ground_truth"]):
        item: dict[str, Any] = plain(dict(extra)) if isinstance(extra, Mapping) else {}
        item["data_source"] = plain(source)
        item["ground_truth"] = plain(truth)
        items.append(item)
    return items


class VerlReward:
    """The compiled grader and field map behind one `compute_score`."""

    def __init__(self, grader: GraderSource, options: OptionsLike, mapping: dict[str, Any]) -> None:
        check_mapping("verl", mapping, _MAPPING)
        error_reward = mapping.get("error_reward", 0.0)
        if isinstance(error_reward, bool) or not isinstance(error_reward, (int, float)):
            raise ValueError(f"verl make_reward(): error_reward must be a number, got {error_reward!r}")
        self.fields = FieldMap("verl", mapping.get("sample", "solution_str"), mapping.get("item"), FIELDS, _default_items)
        self.scorer = RewardScorer(compile_grader(grader, options), error_reward)

    def rows(self, single: tuple[Any, Any, Any, Any], batch: tuple[Any, Any, Any, Any]) -> tuple[list[Any], bool]:
        """Engine rows for either call form, and whether it was the batch form."""
        if batch[1] is not None:
            columns = [list(c) if c is not None else None for c in batch]
            n = len(columns[1])  # type: ignore[arg-type]
            for name, column in zip(FIELDS, columns):
                if column is not None and len(column) != n:
                    raise ValueError(f"verl reward: {name}s has {len(column)} entries for {n} solution_strs")
            fields = {name: column if column is not None else [None] * n for name, column in zip(FIELDS, columns)}
            return self.fields.rows(fields, n), True
        if single[1] is None:
            raise TypeError("verl reward: called without solution_str= (or solution_strs= for a batch)")
        return self.fields.rows({name: [value] for name, value in zip(FIELDS, single)}, 1), False

    def result(self, batch: RewardBatch, many: bool) -> dict[str, Any] | list[dict[str, Any]]:
        flags = batch.flags()
        out = []
        for i, reward in enumerate(batch.rewards):
            entry: dict[str, Any] = {"score": reward, "errored": 1.0 if batch.errored[i] else 0.0, "error": flags[i]}
            for key, values in batch.sub_rewards.items():
                entry[f"sub_reward/{key}"] = values[i]
            out.append(entry)
        return out if many else out[0]

    def close(self) -> None:
        self.scorer.close()


def make_reward(grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> ComputeScore:
    """verl's `compute_score` for `grader` (a config, the path of its JSON or a compiled grader), validated now.

    `mapping`: `sample` (a path among data_source, solution_str, ground_truth, extra_info; default
    `"solution_str"`), `item` (None: extra_info plus data_source and ground_truth; a path whose value is the item;
    or `{item_key: path}`), `error_reward` (the score of a failed grade, default 0.0).
    """
    state = VerlReward(grader, options, mapping)

    def compute_score(
        data_source: Any = None, solution_str: Any = None, ground_truth: Any = None, extra_info: Any = None, *,
        data_sources: Any = None, solution_strs: Any = None, ground_truths: Any = None, extra_infos: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        rows, many = state.rows((data_source, solution_str, ground_truth, extra_info), (data_sources, solution_strs, ground_truths, extra_infos))
        return state.result(state.scorer.score(rows), many)

    return _described(compute_score, state)


def make_async_reward(grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> Callable[..., Awaitable[Any]]:
    """`make_reward` as an `async def` (verl awaits it on the reward-loop actor's event loop)."""
    state = VerlReward(grader, options, mapping)

    async def compute_score(
        data_source: Any = None, solution_str: Any = None, ground_truth: Any = None, extra_info: Any = None, *,
        data_sources: Any = None, solution_strs: Any = None, ground_truths: Any = None, extra_infos: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        rows, many = state.rows((data_source, solution_str, ground_truth, extra_info), (data_sources, solution_strs, ground_truths, extra_infos))
        return state.result(await state.scorer.ascore(rows), many)

    return _described(compute_score, state)


def _described(func: Any, state: VerlReward) -> Any:
    func.__doc__ = f"verl compute_score of the grader {state.scorer.compiled.name!r} (graders)."
    func.grader = state.scorer.compiled
    func.close = state.close
    return func
