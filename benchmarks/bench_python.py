"""python graders: cold start, warm latency and throughput, against a fresh `python -c` process per sample.

Prints, for a trivial grader and a rapidfuzz grader: cold start (first grade on a new pool), one-call-at-a-time
latency p50/p99 and rate through the async API, and `run_many` throughput, with the pool at 1 worker and at all
cores; then the baseline of one fresh interpreter per sample. Targets (issue 4, 2 cores, full isolation):
≥ 5,000 grades/s one at a time (async), ≥ 100,000/s via run_many, cold start ≤ 300 ms.

    python benchmarks/bench_python.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import graders
from graders import Options
from graders.evaluators.python import pool as pool_module

TRIVIAL = "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['answer'] else 0.0\n"
FUZZY = "from rapidfuzz import fuzz\n\ndef grade(sample, item):\n    return fuzz.WRatio(sample['output_text'], item['answer']) / 100\n"


def rows(n: int) -> list[dict]:
    return [{"model_sample": f"answer {i % 13}", "item": {"answer": "answer 3"}} for i in range(n)]


def bench(name: str, source: str, workers: int, n: int) -> None:
    pool_module.shutdown()
    options = Options().with_values({"python.workers": workers})
    compiled = graders.compile({"type": "python", "source": source}, options)
    start = time.perf_counter()
    first = compiled.run("answer 3", {"answer": "answer 3"})
    cold = time.perf_counter() - start
    assert not first.failed, first.details

    async def one_at_a_time(count: int) -> list[float]:
        lat = []
        for row in rows(count):
            t = time.perf_counter()
            await compiled.arun(row["model_sample"], row["item"])
            lat.append(time.perf_counter() - t)
        return lat

    lat = asyncio.run(one_at_a_time(min(n, 3000)))
    data = rows(n)
    compiled.run_many(data[:1000])
    start = time.perf_counter()
    out = compiled.run_many(data)
    bulk = time.perf_counter() - start
    assert not any(r.failed for r in out)
    p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
    print(
        f"  {name:10s} workers={workers}  cold {cold * 1000:6.0f} ms   one-at-a-time p50 {p50 * 1e6:6.0f} µs p99 {p99 * 1e6:6.0f} µs "
        f"{len(lat) / sum(lat):7,.0f}/s   run_many {n / bulk:9,.0f}/s   [{first.details['sandbox']}]"
    )


def baseline(count: int = 30) -> float:
    code = TRIVIAL + "import json,sys\nprint(grade({'output_text': 'answer 3'}, {'answer': 'answer 3'}))\n"
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"python graders, {args.rows:,} rows for run_many, {cores} cores")
    for workers in sorted({1, cores}):
        bench("trivial", TRIVIAL, workers, args.rows)
        bench("rapidfuzz", FUZZY, workers, args.rows)
    rate = baseline()
    print(f"  baseline: fresh `python -c` per sample: {rate:,.1f}/s")
    print("targets: one-at-a-time >= 5,000/s; run_many >= 100,000/s; cold start <= 300 ms")
    pool_module.shutdown()


if __name__ == "__main__":
    main()
