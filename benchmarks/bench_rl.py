"""RL rewards: a TRL-shaped step through `graders.integrations.trl.make_reward`, beside the same `grade` function
written as a plain in-process TRL reward function, and Ray Data against `run_many`.

A step is 64 prompts x 8 completions (512 calls' worth of completions, ~24 words each, an `answer` column),
called as GRPOTrainer calls a reward function (`prompts=`, `completions=`, `completion_ids=`, the columns,
`log_extra`, `log_metric`, `trainer_state`). In one run it prints:

1. a trivial python grader: the adapter's step time, the plain function's, and the difference (the adapter's
   added time per step; target under 10 ms for the 512 completions);
2. a python grader doing about 1 ms of work per sample (calibrated here): both step times and their ratio
   (target: the adapter faster than in-process, because the sandbox pool uses every core);
3. a CPU-bound non-python grader (a multi of rouge_l and two string_checks) at 512 and 8192 completions with
   `run_many` in-process (`workers=1`) and with shards (the default): whether the parallel path helps a step;
4. Ray Data on a local 2-CPU Ray (`map_batches(Grader)`, two actors of one CPU) against `run_many` in one
   process, rows/s over 20,000 rows, Ray's figure including its actors' start.

Steps are timed after a warm-up (the sandbox workers start on the first), the median and range of `--steps`.
The machine is shared: compare within one run.

    python benchmarks/bench_rl.py [--steps 20] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import graders
from graders.batch.cores import available_cores
from graders.integrations.trl import make_reward

WORDS = ("the cat sat on a mat while dogs ran across green fields under bright blue skies and birds sang "
         "songs of old river towns where people walk slowly past shops selling bread cheese wine").split()
TRIVIAL = "def grade(sample, item):\n    return 1.0 if item['answer'] in sample['output_text'] else 0.0\n"
WORK = (
    "def grade(sample, item):\n"
    "    total = 0\n"
    "    for i in range(LOOPS):\n"
    "        total += i * i\n"
    "    return 1.0 if item['answer'] in sample['output_text'] else 0.0\n"
)


def step_inputs(prompts: int, per_prompt: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    answers = [rng.choice(WORDS) for _ in range(prompts)]
    completions = [" ".join(rng.choice(WORDS) for _ in range(24)) for _ in range(prompts * per_prompt)]
    logged: list[Any] = []
    return {
        "prompts": [f"question {i // per_prompt}" for i in range(prompts * per_prompt)],
        "completions": completions,
        "completion_ids": [[0] * 24 for _ in completions],
        "answer": [answers[i // per_prompt] for i in range(prompts * per_prompt)],
        "trainer_state": None,
        "log_extra": lambda name, values: logged.append(name),
        "log_metric": lambda name, value: logged.append(name),
    }


def plain_reward(source: str) -> Callable[..., list[float | None]]:
    """The same `grade`, as a TRL user writes it without graders: run in the trainer's process, one at a time."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<grade>", "exec"), namespace)  # noqa: S102 - the benchmark's own grader code
    grade = namespace["grade"]

    def reward(prompts: Any = None, completions: Any = None, completion_ids: Any = None, answer: Any = None, **kwargs: Any) -> list[float | None]:
        return [float(grade({"output_text": c}, {"prompt": p, "answer": a})) for c, p, a in zip(completions, prompts, answer)]

    return reward


def time_steps(func: Callable[..., Any], inputs: dict[str, Any], steps: int) -> list[float]:
    func(**inputs)  # warm-up: sandbox workers start, templates compile
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        func(**inputs)
        times.append(time.perf_counter() - start)
    return times


def show(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:8.2f} ms (range {min(times) * 1000:.2f}-{max(times) * 1000:.2f})"


def calibrate_loops(target_s: float = 0.001) -> int:
    """The loop count that makes WORK's `grade` take about `target_s` in this process."""
    loops = 20_000
    for _ in range(3):
        grade = plain_reward(WORK.replace("LOOPS", str(loops)))
        start = time.perf_counter()
        grade(prompts=["p"] * 50, completions=["x"] * 50, answer=["x"] * 50)
        elapsed = (time.perf_counter() - start) / 50
        loops = max(1000, int(loops * target_s / elapsed))
    return loops


def python_rows(steps: int) -> None:
    inputs = step_inputs(64, 8)
    trivial = {"type": "python", "name": "trivial", "source": TRIVIAL}
    adapter, plain = make_reward(trivial), plain_reward(TRIVIAL)
    assert adapter(**inputs) == plain(**inputs), "the adapter and the plain function disagree"
    compiled = adapter.grader
    rows = [{"model_sample": c, "item": {"prompt": q, "answer": x}} for c, q, x in zip(inputs["completions"], inputs["prompts"], inputs["answer"])]
    a, p = time_steps(adapter, inputs, steps), time_steps(plain, inputs, steps)
    r = time_steps(lambda **_: compiled.run_many(rows, workers=1), inputs, steps)
    print(f"1. trivial python grader, 512 completions, {steps} steps")
    print(f"   make_reward (sandboxed, {compiled.options.python.workers} workers) {show(a)}")
    print(f"   plain in-process function            {show(p)}")
    print(f"   added time per step: {(statistics.median(a) - statistics.median(p)) * 1000:.2f} ms   (target < 10 ms)")
    print(f"   of which run_many on the same rows   {show(r)} (the sandbox round trip); the adapter's own work "
          f"{(statistics.median(a) - statistics.median(r)) * 1000:.2f} ms")
    adapter.close()

    loops = calibrate_loops()
    source = WORK.replace("LOOPS", str(loops))
    heavy = {"type": "python", "name": "heavy", "source": source}
    adapter, plain = make_reward(heavy), plain_reward(source)
    a, p = time_steps(adapter, inputs, max(3, steps // 4)), time_steps(plain, inputs, max(3, steps // 4))
    per_sample = statistics.median(p) / 512 * 1000
    print(f"2. python grader of ~1 ms per sample ({per_sample:.2f} ms measured in-process), 512 completions")
    print(f"   make_reward {show(a)}")
    print(f"   plain       {show(p)}")
    print(f"   ratio adapter / plain: {statistics.median(a) / statistics.median(p):.2f}x   (target < 1: faster than in-process)")
    adapter.close()


def cpu_rows(steps: int) -> None:
    multi = {
        "type": "multi", "name": "text", "calculate_output": "0.5 * rouge + 0.25 * has + 0.25 * exact",
        "graders": {
            "rouge": {"type": "text_similarity", "name": "rouge", "input": "{{ sample.output_text }}", "reference": "{{ item.prompt }}", "evaluation_metric": "rouge_l"},
            "has": {"type": "string_check", "name": "has", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "ilike"},
            "exact": {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"},
        },
    }
    print(f"3. multi of rouge_l and two string_checks (no python): run_many in-process vs shards ({available_cores()} cores)")
    for prompts in (64, 1024):
        inputs = step_inputs(prompts, 8)
        local = make_reward(multi, options={"batch.workers": 1})
        sharded = make_reward(multi)
        a = time_steps(local, inputs, max(3, steps // 4))
        b = time_steps(sharded, inputs, max(3, steps // 4))
        print(f"   {prompts * 8:5d} completions: in-process {show(a)} | shards {show(b)} | shards / in-process {statistics.median(b) / statistics.median(a):.2f}x")


def ray_rows(rows: int = 20_000) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        print("4. Ray Data: skipped (pip install 'graders[ray]')")
        return
    from graders.integrations.ray import Grader

    trivial = {"type": "python", "name": "trivial", "source": TRIVIAL.replace("item['answer'] in sample['output_text']", "sample['output_text'] == item['answer']")}
    data = [{"id": i, "model_sample": str(i % 7), "item": {"answer": "3"}} for i in range(rows)]
    compiled = graders.compile(trivial)
    compiled.run_many(data[:100])
    start = time.perf_counter()
    expected = compiled.run_many(data)
    in_process = time.perf_counter() - start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        start = time.perf_counter()
        out = ray.data.from_items(data, override_num_blocks=8).map_batches(
            Grader, fn_constructor_kwargs={"grader": trivial}, batch_format="pyarrow", batch_size=1000,
            compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1,
        ).take_all()
        on_ray = time.perf_counter() - start
    finally:
        ray.shutdown()
    by_id = {r["id"]: r["reward"] for r in out}  # Ray Data does not keep input order unless told to (which costs)
    assert [by_id[i] for i in range(rows)] == [r.reward for r in expected], "Ray and run_many disagree"
    print(f"4. trivial python grader, {rows:,} rows")
    print(f"   run_many, one process        {rows / in_process:10,.0f} rows/s ({in_process:.2f} s)")
    print(f"   Ray Data, 2 actors on 2 CPUs {rows / on_ray:10,.0f} rows/s ({on_ray:.2f} s, actor and sandbox start included)")
    print(f"   Ray / run_many: {in_process / on_ray:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {available_cores()} cores, load average {os.getloadavg()[0]:.1f}")
    python_rows(args.steps)
    cpu_rows(args.steps)
    if not args.no_ray:
        ray_rows()


if __name__ == "__main__":
    main()
