"""Graders on a Ray cluster: `Grader` for `Dataset.map_batches`, and the actors behind `graders batch --ray`.

`Grader` is a callable class: Ray Data builds it once per actor (the grader compiled once, a python sandbox pool
sized to the CPUs Ray gave that actor) and calls it with batches as pandas DataFrames, Arrow tables or dicts of
numpy arrays; it returns the batch, of the same kind, with `reward`, `errored`, `error` and, for a `multi`,
`sub_reward/<key>` columns added. Each row's sample is its `model_sample` (or structured `sample`) column and its
item the `item` column, as in a `graders batch` row; `sample=` and `item=` pick other columns by dotted path.

    ds.map_batches(Grader, fn_constructor_kwargs={"grader": config}, batch_format="pandas",
                   compute=ray.data.ActorPoolStrategy(size=2), num_cpus=0.5)

Give each actor fewer CPUs than a whole core when the dataset is read from files: read tasks need a CPU too, and
two 1-CPU actors on a 2-CPU cluster would hold both while the reads wait forever.

`graders batch --ray` keeps the local batch's reader, resume, summary and report on the driver: the driver cuts
the input into the same blocks of raw lines (a Parquet file as one JSON line per row), Ray actors grade them with
the same per-block code as a shard, and the driver writes their lines in input order. So the output is the local
batch's, line for line (all but `execution_time`), whatever the cluster.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..batch.pipeline import PARENT, PYTHON, BatchError, grader_path
from ..batch.shard import BlockWorker, ShardSpec
from ..engine import CompiledGrader
from ._common import FieldMap, GraderSource, OptionsLike, RewardScorer, check_mapping, compile_grader, cpu_share, plain

_MAPPING = ("sample", "item", "error_reward", "prefix", "response")
PER_ACTOR = 2
"""Blocks queued on each actor, so none waits for the driver between two blocks."""
READY_TIMEOUT_S = 600.0
"""How long the driver waits for the actors to be placed and to build the grader."""


def _columns(batch: Any) -> tuple[str, list[str]]:
    """(kind, column names) of a Ray Data batch."""
    module = type(batch).__module__
    if module.startswith("pandas"):
        return "pandas", [str(c) for c in batch.columns]
    if module.startswith("pyarrow"):
        return "pyarrow", list(batch.column_names)
    if isinstance(batch, Mapping):
        return "numpy", list(batch.keys())
    raise TypeError(f"graders Grader: a batch must be a pandas DataFrame, a pyarrow Table or a dict of arrays, got {type(batch).__name__}")


def _column(batch: Any, kind: str, name: str) -> list[Any]:
    if kind == "pyarrow":
        return list(batch.column(name).to_pylist())
    return list(batch[name].tolist())


def _with_columns(batch: Any, kind: str, added: dict[str, list[Any]]) -> Any:
    """The batch, of its own kind, with `added` set (a batch Ray hands over may be a read-only view: never mutated)."""
    if kind == "pandas":
        out = batch.copy(deep=False)
        for name, values in added.items():
            out[name] = values
        return out
    if kind == "pyarrow":
        import pyarrow as pa

        for name, values in added.items():
            column = pa.array(values)
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, name, column) if index >= 0 else batch.append_column(name, column)
        return batch
    import numpy as np

    out = dict(batch)
    for name, values in added.items():
        out[name] = np.asarray(values)
    return out


class Grader:
    """A grader as a Ray Data callable class: `__call__(batch)` returns the batch with reward columns added.

    `mapping`: `sample` (column path of the sample; default `model_sample`, else `sample`), `item` (None: the
    `item` column, or no item when there is none; a path; or `{item_key: path}`), `error_reward` (the reward of a
    failed grade, default 0.0 as in the wire response), `prefix` (put before every added column's name),
    `response` (True: also a `response` column holding the wire response JSON).
    """

    def __init__(self, grader: GraderSource, *, options: OptionsLike = None, **mapping: Any) -> None:
        check_mapping("Ray", mapping, _MAPPING)
        self._sample = mapping.get("sample")
        self._item = mapping.get("item")
        self._maps: dict[str, FieldMap] = {}
        if self._sample is not None:
            self._map(self._sample)  # a bad mapping fails each actor's construction, so the dataset, at once
        error_reward = mapping.get("error_reward", 0.0)
        if isinstance(error_reward, bool) or not isinstance(error_reward, (int, float)):
            raise ValueError(f"Ray Grader: error_reward must be a number, got {error_reward!r}")
        self.prefix = str(mapping.get("prefix", ""))
        self.response = bool(mapping.get("response", False))
        self.scorer = RewardScorer(compile_grader(grader, options), error_reward, workers=1)

    def _map(self, sample: str) -> FieldMap:
        fmap = self._maps.get(sample)
        if fmap is None:
            fmap = self._maps[sample] = FieldMap("Ray", sample, self._item, None, _item_column)
        return fmap

    def __call__(self, batch: Any) -> Any:
        kind, names = _columns(batch)
        sample = self._sample or ("model_sample" if "model_sample" in names else "sample")
        fmap = self._map(sample)
        wanted = fmap.roots() | ({"item"} if self._item is None else set())
        fields = {name: _column(batch, kind, name) for name in names if name in wanted}
        n = batch.num_rows if kind == "pyarrow" else len(batch) if kind == "pandas" else len(next(iter(batch.values()), ()))
        scored = self.scorer.score(fmap.rows(fields, n))
        p = self.prefix
        added: dict[str, list[Any]] = {f"{p}reward": scored.rewards, f"{p}errored": scored.errored, f"{p}error": scored.flags()}
        for key, values in scored.sub_rewards.items():
            added[f"{p}sub_reward/{key}"] = values
        if self.response:
            added[f"{p}response"] = [r.model_dump_json() for r in scored.responses]
        return _with_columns(batch, kind, added)

    def close(self) -> None:
        self.scorer.close()


def _item_column(fields: Mapping[str, Sequence[Any]], n: int) -> list[Any]:
    """The `item` column as it is (a missing one: no item, which the engine answers by `run.missing_item`)."""
    column = fields.get("item")
    return [None] * n if column is None else [plain(v) for v in column]


# -- graders batch --ray ---------------------------------------------------------------------------------------------


class _BlockActor:
    """One Ray actor grading blocks with the shard's per-block code (decode, layout, grade, encode, block summary)."""

    def __init__(self, spec: ShardSpec) -> None:
        if spec.python_workers is None and spec.options.python.workers is None:
            spec = replace(spec, python_workers=cpu_share(spec.options))
        self.worker = BlockWorker(spec)

    def ready(self) -> bool:
        return True

    def process(self, seq: int, first_row: int, first_line: int, block: bytes) -> tuple[Any, ...]:
        return self.worker.process(seq, first_row, first_line, block)


class _AsyncBlockActor(_BlockActor):
    """For graders that call models: blocks overlap on the actor's event loop, under one limiter per actor."""

    async def process(self, seq: int, first_row: int, first_line: int, block: bytes) -> tuple[Any, ...]:  # type: ignore[override]
        return await self.worker.aprocess(seq, first_row, first_line, block)


class RayBatch:
    """Where `graders batch --ray` grades: the cluster at `address` (None: Ray's own `RAY_ADDRESS`, else a new
    local cluster), `actors` of `cpus` CPUs each (None: as many as the cluster's CPUs hold)."""

    def __init__(self, address: str | None = None, cpus: float = 1.0) -> None:
        if not cpus > 0:
            raise ValueError(f"--ray-cpus must be positive, got {cpus}")
        self.address = address
        self.cpus = float(cpus)

    def start(self, spec: ShardSpec, compiled: CompiledGrader, actors: int | None) -> RayShards:
        return RayShards(self, spec, compiled, actors)


class RayShards:
    """Ray actors answering block messages, handed out and collected in input order (as `ShardPool.ordered`)."""

    def __init__(self, where: RayBatch, spec: ShardSpec, compiled: CompiledGrader, actors: int | None) -> None:
        import ray

        self.ray = ray
        self.owns_cluster = not ray.is_initialized()
        if self.owns_cluster:
            try:
                ray.init(address=where.address, log_to_driver=True)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or its own errors
                raise BatchError(f"cannot start or reach the Ray cluster{f' at {where.address}' if where.address else ''}: {_cause(exc)}") from None
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
        fits = int(math.floor(cluster_cpus / where.cpus + 1e-9))
        count = actors or max(1, fits)
        if count > fits:
            self.close()
            raise BatchError(
                f"{count} Ray actors of {where.cpus:g} CPUs need {count * where.cpus:g} CPUs; the cluster has "
                f"{cluster_cpus:g} (lower --workers or --ray-cpus)"
            )
        path = grader_path(compiled.config)
        options = spec.options
        if path == PARENT:  # one limit for the whole run, shared out between the actors
            total = options.models.max_concurrency
            options = options.with_values({"models.max_concurrency": max(1, total // count)})
        spec = replace(spec, options=options, python_workers=None if path == PYTHON else spec.python_workers, out_path=None)
        cls = _AsyncBlockActor if path == PARENT else _BlockActor
        remote = ray.remote(cls).options(num_cpus=where.cpus, max_restarts=1, max_concurrency=4 * PER_ACTOR if path == PARENT else 1)
        self.fallback = BlockWorker(replace(spec, python_workers=1), compiled)
        self.actors: list[Any] = [remote.remote(spec) for _ in range(count)]
        self.window = count * 4
        try:
            ray.get([a.ready.remote() for a in self.actors], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise BatchError(f"the Ray actors were not ready within {READY_TIMEOUT_S:g} s (not enough free CPUs on the cluster?)") from None
        except ray.exceptions.RayError as exc:
            self.close()
            raise BatchError(f"a Ray actor could not build the grader: {_cause(exc)}") from None

    def ordered(self, messages: Iterator[tuple[Any, ...]], window: int) -> Iterator[tuple[Any, ...]]:
        """Results of `messages` (`(seq, first_row, first_line, block)`) in seq order; a block whose actor died is
        sent again, and one that failed twice becomes rows flagged with the reason."""
        ray = self.ray
        load = [0] * len(self.actors)
        inflight: dict[Any, tuple[int, tuple[Any, ...]]] = {}
        done: dict[int, tuple[Any, ...]] = {}
        retry: deque[tuple[Any, ...]] = deque()
        attempts: dict[int, int] = {}
        next_seq = issued = 0
        exhausted = False
        while True:
            while retry or (not exhausted and issued - next_seq < window):
                index = min(range(len(load)), key=load.__getitem__)
                if load[index] >= PER_ACTOR:
                    break
                if retry:
                    message = retry.popleft()
                else:
                    upcoming = next(messages, None)
                    if upcoming is None:
                        exhausted = True
                        break
                    message = upcoming
                    issued += 1
                inflight[self.actors[index].process.remote(*message)] = (index, message)
                load[index] += 1
            while next_seq in done:
                yield done.pop(next_seq)
                next_seq += 1
            if not inflight:
                if exhausted and not retry:
                    return
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                index, message = inflight.pop(ref)
                load[index] -= 1
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    tries = attempts[message[0]] = attempts.get(message[0], 0) + 1
                    if tries >= 2:
                        seq, first_row, first_line, block = message
                        done[seq] = self.fallback.failed(seq, first_row, first_line, block, f"the Ray actor grading it failed twice ({_cause(exc)})")
                    else:
                        retry.append(message)
                    continue
                done[result[0]] = result

    def flush(self) -> None:
        """Nothing to wait for: actors never write the output (the driver does, in order)."""

    def close(self) -> None:
        for actor in getattr(self, "actors", ()):
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - an actor already gone
                pass
        self.actors = []
        if self.owns_cluster and self.ray.is_initialized():
            self.ray.shutdown()
            self.owns_cluster = False

    terminate = close


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")

