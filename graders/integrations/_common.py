"""What every RL-framework adapter shares: a grader loaded once, trainer fields mapped to rows, errors made visible.

A trainer hands over parallel lists (completions, prompts, labels, dataset columns). A `FieldMap` says where each
sample's `sample` and `item` come from among those fields (dotted paths, validated when the adapter is made), and
turns the lists into engine rows: a text becomes `model_sample`, an object a structured `sample`, a list of chat
messages the structured sample of its assistant turns. `RewardScorer` grades the rows through `run_many` /
`arun_many`, and `RewardBatch` says which rewards came from a failed grade: those get `error_reward` (default 0.0,
or None where the trainer has a "no score" value) and an `errored` marker in the extras, and the first failure of a
batch is logged, so a broken grader never looks like a policy that scores zero.

Each process that scores gets a python sandbox pool sized to its share of the CPUs (`cpu_share`), not to every core
of the machine: Ray actors and torchrun ranks each build their own.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..batch.cores import available_cores
from ..batch.layout import _ABSENT, get_path
from ..engine import CompiledGrader
from ..errors import BadRow
from ..options import Options
from ..response import FLAG_KEYS, GraderRunResponse

log = logging.getLogger("graders.integrations")

GraderSource = Union[Mapping[str, Any], str, Path, CompiledGrader]
"""A grader config, the path of its JSON file, or an already compiled grader."""
ItemSpec = Union[None, str, Mapping[str, str]]
"""Where `item` comes from: None (the trainer's default), a path whose value is the whole item, or
`{item_key: path}`."""
OptionsLike = Union[Options, Mapping[str, Any], None]
"""Options, or `{"dotted.name": value}` (what an exported reward file embeds)."""


def load_grader(grader: GraderSource) -> Mapping[str, Any] | CompiledGrader:
    """The grader config from a path (its JSON read now), or the config or compiled grader as given."""
    if isinstance(grader, (str, Path)):
        path = Path(grader)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"grader file {str(path)!r}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"grader file {str(path)!r}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"grader file {str(path)!r} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"grader file {str(path)!r} must hold a JSON object, got {type(data).__name__}")
        return data
    if isinstance(grader, (Mapping, CompiledGrader)):
        return grader
    raise TypeError(f"grader must be a config dict, a path to its JSON or a compiled grader, got {type(grader).__name__}")


def _ray_assigned_cpus() -> float | None:
    """The CPUs Ray assigned to this actor or task; None outside a Ray worker (ray is never imported here)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        context = ray.get_runtime_context()
        if context.worker.mode != ray.WORKER_MODE:
            return None
        cpus = context.get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 - an unusual Ray state only means "no share known"
        return None
    return float(cpus) if cpus else None


def cpu_share(options: Options) -> int:
    """Cores this process should give its python sandbox workers: the CPUs Ray assigned to this actor (rounded up),
    else the cores this process may use divided by the processes scoring on this machine (`rl.local_processes`,
    from torchrun's and accelerate's `LOCAL_WORLD_SIZE`)."""
    assigned = _ray_assigned_cpus()
    if assigned:
        return max(1, math.ceil(assigned))
    return max(1, available_cores() // max(1, options.rl.local_processes or 1))


def resolve_options(options: OptionsLike) -> Options:
    """Options as given (a dict is applied to the defaults), with `python.workers` set to this process's CPU share
    unless it was set."""
    if options is None:
        resolved = Options()
    elif isinstance(options, Options):
        resolved = options
    elif isinstance(options, Mapping):
        resolved = Options().with_values(dict(options))
    else:
        raise TypeError(f"options must be graders.Options or a dict of dotted names, got {type(options).__name__}")
    if resolved.python.workers is None:
        resolved = resolved.with_values({"python.workers": cpu_share(resolved)})
    return resolved


def compile_grader(grader: GraderSource, options: OptionsLike) -> CompiledGrader:
    """Validate and compile once (an invalid config raises `GraderValidationError` now, before any training)."""
    loaded = load_grader(grader)
    if isinstance(loaded, CompiledGrader):
        if options is not None:
            raise ValueError("options cannot be given with a compiled grader: compile it with them")
        return loaded
    return CompiledGrader(loaded, resolve_options(options))


def check_mapping(adapter: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Refuse a mapping field the adapter does not have, naming it and the ones it has."""
    for name in given:
        if name not in allowed:
            raise TypeError(f"{adapter} make_reward() got an unknown mapping field {name!r}; it takes: {', '.join(allowed)}")


# -- sample and item from trainer fields -----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """JSON-shaped Python values: numpy arrays and scalars (what pandas, Arrow and verl's batches hold) become
    lists and numbers, tuples lists; everything else is kept."""
    cls = value.__class__
    if cls is str or cls is float or cls is int or cls is bool or value is None:
        return value
    if cls is dict:
        return {k: plain(v) for k, v in value.items()}
    if cls is list or cls is tuple:
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, Arrow scalars' cousins
    if tolist is not None and type(value).__module__.startswith("numpy"):
        return plain(tolist())
    return value


def _content_text(content: Any) -> str:
    """A chat message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, Mapping) and part.get("type", "text") == "text")
    return ""


def _tool_call(call: Any) -> Any:
    """A tool call as Chat Completions writes it (`function.arguments` a JSON string; TRL parses it to a dict)."""
    if not isinstance(call, Mapping):
        return call
    function = call.get("function")
    if not isinstance(function, Mapping):
        return plain(call)
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(plain(arguments), ensure_ascii=False)
    out: dict[str, Any] = {}
    if call.get("id") is not None:
        out["id"] = call["id"]
    out["type"] = call.get("type") or "function"
    out["function"] = {"name": function.get("name"), "arguments": arguments}
    return out


def messages_sample(messages: Sequence[Any]) -> dict[str, Any] | None:
    """The structured sample of a conversational completion: the last assistant message's content as
    `output_text`, and the tool calls of every assistant message in order as `output_tools`; None without an
    assistant message."""
    turns = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant"]
    if not turns:
        return None
    tools = [_tool_call(c) for m in turns for c in (m.get("tool_calls") or [])]
    return {"output_text": _content_text(turns[-1].get("content")), "output_tools": tools}


def sample_fields(value: Any, where: str) -> dict[str, Any] | BadRow:
    """A trainer's sample value as row fields: text is `model_sample`, an object a structured `sample`, a list of
    chat messages the sample of its assistant turns."""
    if isinstance(value, str):
        return {"model_sample": value}
    if isinstance(value, Mapping):
        return {"sample": plain(value)}
    if isinstance(value, (list, tuple)) and all(isinstance(m, Mapping) for m in value):
        built = messages_sample(value)
        if built is None:
            return BadRow(f"the sample at {where!r} is a list of messages without an assistant message", where)
        return {"sample": built}
    return BadRow(f"the sample at {where!r} is {type(value).__name__}, not text, a sample object or chat messages", where)


def _parse_path(adapter: str, label: str, path: Any, fields: Sequence[str] | None) -> tuple[str, ...]:
    if not isinstance(path, str) or not path or not all(path.split(".")):
        raise ValueError(f"{adapter} make_reward(): {label} must be a dotted path such as 'extra_info.answer', got {path!r}")
    parts = tuple(path.split("."))
    if fields is not None and parts[0] not in fields:
        raise ValueError(
            f"{adapter} make_reward(): {label} = {path!r}: {parts[0]!r} is not a field {adapter} passes "
            f"(it passes: {', '.join(fields)})"
        )
    return parts


class FieldMap:
    """Where `sample` and `item` come from among one trainer's per-sample fields (checked when it is made).

    `fields` lists the fields the trainer passes (None: open, such as dataset columns, checked on the first call);
    `default_items(fields, n)` builds every sample's item when `item` is None.
    """

    def __init__(
        self,
        adapter: str,
        sample: Any,
        item: Any,
        fields: Sequence[str] | None,
        default_items: Callable[[Mapping[str, Sequence[Any]], int], list[Any]],
    ) -> None:
        self.adapter = adapter
        self.sample_path = _parse_path(adapter, "sample", sample, fields)
        self.sample_name = sample
        self._default_items = default_items
        self.whole_item: tuple[str, ...] | None = None
        self.item_paths: list[tuple[str, str, tuple[str, ...]]] | None = None
        if item is None:
            pass
        elif isinstance(item, str):
            self.whole_item = _parse_path(adapter, "item", item, fields)
        elif isinstance(item, Mapping):
            if not item:
                raise ValueError(f"{adapter} make_reward(): item is an empty mapping; give {{item_key: path}} or leave it out")
            self.item_paths = []
            for key, path in item.items():
                if not isinstance(key, str) or not key:
                    raise ValueError(f"{adapter} make_reward(): item keys must be non-empty strings, got {key!r}")
                self.item_paths.append((key, path, _parse_path(adapter, f"item[{key!r}]", path, fields)))
        else:
            raise ValueError(
                f"{adapter} make_reward(): item must be a path, a {{item_key: path}} mapping or None, got {type(item).__name__}"
            )

    def roots(self) -> set[str]:
        """The fields this mapping reads (for the check that every one is present)."""
        names = {self.sample_path[0]}
        if self.whole_item is not None:
            names.add(self.whole_item[0])
        for _, _, path in self.item_paths or ():
            names.add(path[0])
        return names

    def require(self, fields: Mapping[str, Any]) -> None:
        """A field the mapping reads and the trainer did not pass fails the whole call, naming it (a config error,
        not one sample's)."""
        missing = sorted(self.roots() - fields.keys())
        if missing:
            raise ValueError(
                f"{self.adapter} reward: the mapping reads {', '.join(map(repr, missing))}, but the trainer passed no "
                f"such field; it passed: {', '.join(sorted(fields))}"
            )

    @staticmethod
    def _column(fields: Mapping[str, Sequence[Any]], path: tuple[str, ...]) -> Sequence[Any]:
        """Every sample's value at `path` (`_ABSENT` where a nested step is missing)."""
        values = fields[path[0]]
        if len(path) == 1:
            return values
        rest = path[1:]
        return [get_path(plain(value), rest) for value in values]

    def rows(self, fields: Mapping[str, Sequence[Any]], n: int) -> list[Any]:
        """One engine row per sample (a `BadRow` for a sample whose own fields do not fit the mapping)."""
        self.require(fields)
        samples = self._column(fields, self.sample_path)
        if self.whole_item is not None:
            whole = self._column(fields, self.whole_item)
            items: list[Any] = [
                BadRow(f"the item path {'.'.join(self.whole_item)!r} is missing in this sample", "item") if v is _ABSENT else plain(v)
                for v in whole
            ]
        elif self.item_paths is not None:
            columns = [(key, name, self._column(fields, path)) for key, name, path in self.item_paths]
            items = []
            for i in range(n):
                item: Any = {}
                for key, name, column in columns:
                    found = column[i]
                    if found is _ABSENT:
                        item = BadRow(f"item[{key!r}]: the path {name!r} is missing in this sample", "item")
                        break
                    item[key] = found if found.__class__ is str else plain(found)
                items.append(item)
        else:
            items = self._default_items(fields, n)
        out: list[Any] = []
        for value, item in zip(samples, items):
            if value.__class__ is str:
                row: Any = {"model_sample": value}
            elif value is _ABSENT:
                row = BadRow(f"the sample path {self.sample_name!r} is missing in this sample", "sample")
            else:
                row = sample_fields(value, self.sample_name)
            if item.__class__ is BadRow and row.__class__ is not BadRow:
                row = item
            if row.__class__ is not BadRow:
                row["item"] = item
            out.append(row)
        return out


# -- grading and the errored marker ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemMapping:
    """How a label and prompt become the grader's `item`, and what an errored sample is worth (OpenRLHF's shape)."""

    label_key: str = "label"
    """`item` key that receives the label (the dataset's reference answer). A label that is an object is merged
    into `item` instead, so `{{ item.answer }}` works for structured labels."""
    prompt_key: str | None = "prompt"
    """`item` key that receives the prompt; None leaves it out."""
    error_reward: float = 0.0
    """Reward given to a sample whose grade failed (it is also marked `errored` in the extras)."""

    def label_item(self, label: Any, prompt: Any = None) -> dict[str, Any]:
        item: dict[str, Any] = plain(dict(label)) if isinstance(label, Mapping) else {self.label_key: plain(label)}
        if self.prompt_key is not None and prompt is not None:
            item.setdefault(self.prompt_key, plain(prompt))
        return item


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

    def scores(self) -> list[float | None]:
        """The rewards with None for every errored sample (TRL's "no score")."""
        return [None if e else r.reward for r, e in zip(self.responses, self.errored)]

    def flags(self) -> list[str]:
        """Per sample, the error flags that are set, comma-separated ("" for a clean grade)."""
        return [",".join(k for k in FLAG_KEYS if r.errors.get(k)) if e else "" for r, e in zip(self.responses, self.errored)]


class RewardScorer:
    """One compiled grader scoring trainer batches; shared by the adapters and by the server's `/get_reward`.

    `workers` goes to `run_many`; by default the `batch.workers` option, else 1: a trainer's batch is graded in
    this process (python graders still use every core through the sandbox pool), because starting shard processes
    for each step cost more than they saved (benchmarks/bench_rl.py: 8192 completions of a rouge_l multi took 1.6x
    as long with shards).
    """

    def __init__(self, compiled: CompiledGrader, error_reward: float = 0.0, workers: int | None = None, *, failed_as: str | None = None) -> None:
        self.compiled = compiled
        self.error_reward = float(error_reward)
        self.workers = workers if workers is not None else (compiled.options.batch.workers or 1)
        self.failed_as = failed_as or f"reward {self.error_reward:g}"
        """What the trainer gets for a failed grade, as the warning says it."""
        self.sub_keys = sub_reward_keys(compiled)

    def score(self, batch: list[Any]) -> RewardBatch:
        return self._collect(self.compiled.run_many(batch, workers=self.workers))

    async def ascore(self, batch: list[Any]) -> RewardBatch:
        return self._collect(await self.compiled.arun_many(batch))

    def _collect(self, responses: list[GraderRunResponse]) -> RewardBatch:
        fallback = self.error_reward
        errored = [r.failed for r in responses]
        rewards = [fallback if e else float(r.reward) for r, e in zip(responses, errored)]
        subs = {key: [float(r.sub_rewards.get(key, fallback)) for r in responses] for key in self.sub_keys}
        failures = [r for r in responses if r.failed]
        if failures:
            first = failures[0]
            flags = ", ".join(k for k in FLAG_KEYS if first.errors.get(k))
            log.warning(
                "%s: %d of %d samples failed to grade and got %s, marked errored (first: %s: %s)",
                self.compiled.name, len(failures), len(responses), self.failed_as, flags, first.outcome.error_text(),
            )
        return RewardBatch(rewards, errored, subs, responses)

    def close(self) -> None:
        self.compiled.close()


def sub_reward_keys(compiled: CompiledGrader) -> list[str]:
    """The `sub_rewards` keys a `multi` reports (U42), known before any sample is graded."""
    graders = getattr(compiled.config, "graders", None)
    if not graders:
        return []
    by_name = compiled.options.multi.sub_rewards_keys == "name"
    return [(sub.name or key) if by_name else key for key, sub in graders.items()]
