"""Core engine overhead: string_check and a 3-way multi of string_checks, against bare Python in the same run.

Prints, per grader: single-call `run()` latency, `run_many()` throughput, and the same comparisons done by a bare
Python loop (the baseline), with the engine's per-sample overhead. Targets (2-core machine):
`.run()` overhead ≤ 10 µs per sample; `.run_many()` ≥ 250,000 string_check rows/s in one process.

    python benchmarks/bench_core.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import graders

EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
MENTIONS = {**EXACT, "name": "mentions", "operation": "ilike"}
NOT_SORRY = {**EXACT, "name": "not_sorry", "reference": "Sorry", "operation": "ne"}
MULTI = {
    "type": "multi",
    "name": "three",
    "graders": {"exact": EXACT, "mentions": MENTIONS, "not_sorry": NOT_SORRY},
    "calculate_output": "0.6 * exact + 0.3 * mentions + 0.1 * not_sorry",
}
ANSWERS = ["Paris", "Rome", "Canberra", "Ottawa", "Lima"]


def make_rows(n: int) -> list[dict]:
    return [
        {"model_sample": ANSWERS[i % 5] if i % 3 else "the answer is " + ANSWERS[(i + 1) % 5].lower(), "item": {"answer": ANSWERS[i % 5]}}
        for i in range(n)
    ]


def baseline_single(row: dict) -> float:
    return 1.0 if row["model_sample"] == row["item"]["answer"] else 0.0


def baseline_multi(row: dict) -> float:
    text, answer = row["model_sample"], row["item"]["answer"]
    exact = 1.0 if text == answer else 0.0
    mentions = 1.0 if answer.lower() in text.lower() else 0.0
    not_sorry = 1.0 if text != "Sorry" else 0.0
    return 0.6 * exact + 0.3 * mentions + 0.1 * not_sorry


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(name: str, grader: dict, baseline, rows: list[dict]) -> None:
    compiled = graders.compile(grader)
    n = len(rows)
    assert [r.reward for r in compiled.run_many(rows[:1000])] == [baseline(r) for r in rows[:1000]], "engine and baseline disagree"

    base_s = best_of(lambda: [baseline(r) for r in rows])
    many_s = best_of(lambda: compiled.run_many(rows))
    single_rows = rows[:20000]
    run = compiled.run
    single_s = best_of(lambda: [run(r["model_sample"], r["item"]) for r in single_rows])
    lat = []
    for r in single_rows[:2000]:
        t = time.perf_counter()
        run(r["model_sample"], r["item"])
        lat.append(time.perf_counter() - t)
    base_us = base_s / n * 1e6
    single_us = single_s / len(single_rows) * 1e6
    print(f"\n{name}")
    print(f"  baseline (bare Python)      {n / base_s:>12,.0f} rows/s   {base_us:7.3f} µs/row")
    print(f"  run_many                    {n / many_s:>12,.0f} rows/s   {many_s / n * 1e6:7.3f} µs/row   ratio to baseline {many_s / base_s:5.1f}x")
    print(f"  run() one at a time         {len(single_rows) / single_s:>12,.0f} rows/s   {single_us:7.3f} µs/row   overhead {single_us - base_us:6.3f} µs/sample")
    print(f"  run() latency p50 / p99     {statistics.median(lat) * 1e6:7.2f} / {statistics.quantiles(lat, n=100)[98] * 1e6:7.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    print(f"graders core benchmark: {args.rows:,} rows, best of 5")
    bench("string_check (eq)", EXACT, baseline_single, rows)
    bench("multi of 3 string_checks", MULTI, baseline_multi, rows)
    print("\ntargets: run() overhead <= 10 µs/sample; run_many >= 250,000 string_check rows/s")


if __name__ == "__main__":
    main()
