"""python graders: cold start, latency and throughput, against a fresh `python -c` process per sample.

For a trivial grader and a rapidfuzz grader, with the pool at 1 worker and at all cores, prints: cold start (first
grade on a new pool), sequential `await arun()` latency p50/p99 and rate, concurrent single-sample `arun` calls
(dynamic batching), `run_many` throughput and fresh-process mode (a fork per grade) throughput. Then the
baselines: one fresh interpreter per sample, and the bare pipe round trip between two processes on this machine
(the floor under one sequential call). Targets (issue 4, 2 cores, full isolation): >= 5,000 grades/s one call at
a time through the async API, >= 100,000/s via run_many, >= 200/s fresh-process mode, cold start <= 300 ms.

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


def compiled_for(source: str, workers: int, **extra: object) -> graders.CompiledGrader:
    return graders.compile({"type": "python", "source": source}, Options().with_values({"python.workers": workers, **extra}))


async def sequential(compiled: graders.CompiledGrader, data: list[dict]) -> list[float]:
    latencies = []
    for row in data:
        start = time.perf_counter()
        await compiled.arun(row["model_sample"], row["item"])
        latencies.append(time.perf_counter() - start)
    return latencies


async def concurrent(compiled: graders.CompiledGrader, data: list[dict]) -> float:
    start = time.perf_counter()
    out = await asyncio.gather(*(compiled.arun(row["model_sample"], row["item"]) for row in data))
    elapsed = time.perf_counter() - start
    assert not any(r.failed for r in out)
    return len(data) / elapsed


def bench(name: str, source: str, workers: int, n: int) -> None:
    pool_module.shutdown()
    compiled = compiled_for(source, workers)
    start = time.perf_counter()
    first = compiled.run("answer 3", {"answer": "answer 3"})
    cold = time.perf_counter() - start
    assert not first.failed, first.details
    data = rows(n)
    lat = asyncio.run(sequential(compiled, data[:3000]))
    together = asyncio.run(concurrent(compiled, data))
    compiled.run_many(data[:1000])
    start = time.perf_counter()
    out = compiled.run_many(data)
    bulk = n / (time.perf_counter() - start)
    assert not any(r.failed for r in out)
    fresh = compiled_for(source, workers, **{"python.fresh_process": True})
    fresh.run_many(data[:workers])
    start = time.perf_counter()
    assert not any(r.failed for r in fresh.run_many(data[:1000]))
    forked = 1000 / (time.perf_counter() - start)
    p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
    print(
        f"  {name:9s} workers={workers}  cold {cold * 1000:4.0f} ms | sequential arun p50 {p50 * 1e6:4.0f} µs "
        f"p99 {p99 * 1e6:5.0f} µs {len(lat) / sum(lat):6,.0f}/s | concurrent arun {together:7,.0f}/s | "
        f"run_many {bulk:8,.0f}/s | fresh process {forked:5,.0f}/s  [{first.details['sandbox']}]"
    )


def baseline(count: int = 30) -> float:
    code = TRIVIAL + "print(grade({'output_text': 'answer 3'}, {'answer': 'answer 3'}))\n"
    start = time.perf_counter()
    for _ in range(count):
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return count / (time.perf_counter() - start)


def pipe_round_trip(count: int = 5000) -> float:
    """Mean µs to send one byte to a child process and read it back (blocking reads on both sides)."""
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(from_parent)
        os.close(to_parent)
        while data := os.read(to_child, 64):
            os.write(from_child, data)
        os._exit(0)
    os.close(to_child)
    os.close(from_child)
    start = time.perf_counter()
    for _ in range(count):
        os.write(from_parent, b"x")
        os.read(to_parent, 64)
    elapsed = time.perf_counter() - start
    os.close(from_parent)
    os.close(to_parent)
    os.waitpid(pid, 0)
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"python graders, {args.rows:,} rows for concurrent arun and run_many, 1,000 in fresh-process mode, {cores} cores")
    for workers in sorted({1, cores}):
        bench("trivial", TRIVIAL, workers, args.rows)
        bench("rapidfuzz", FUZZY, workers, args.rows)
    print(f"  baseline: fresh `python -c` per sample: {baseline():,.1f}/s")
    print(f"  floor: bare pipe round trip between two processes: {pipe_round_trip():.0f} µs")
    print("targets: one call at a time via async >= 5,000/s; run_many >= 100,000/s; fresh process >= 200/s; cold start <= 300 ms")
    pool_module.shutdown()


if __name__ == "__main__":
    main()
