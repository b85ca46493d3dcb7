"""python graders: the price of the sandbox, against the same grade function without one.

For a trivial grader and a rapidfuzz grader, with the pool at 1 worker and at all cores, prints: cold start (first
grade on a new pool), sequential `await arun()` latency p50/p99 and rate, concurrent single-sample `arun` calls
(dynamic batching), `run_many` throughput and fresh-process mode (a fork per grade) throughput, all at the
isolation level the machine gives (printed; `bubblewrap` is the full level). Beside each `run_many` figure: an
unsandboxed `multiprocessing.Pool` of as many processes mapping the same `grade` function over the same rows
(the ratio is the price of isolation). Then pool shutdown time with warm workers of two sources, one fresh
interpreter per sample, and the bare pipe round trip between two processes (the floor under one sequential
call). Targets (2 cores, full isolation): >= 100,000 trivial grades/s via run_many, cold start <= 300 ms,
shutdown <= 100 ms, >= 200/s fresh-process mode, >= 5,000/s one call at a time through the async API.

    python benchmarks/bench_python.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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


_grade = None


def _load_grade(source: str) -> None:
    global _grade
    namespace: dict = {}
    exec(compile(source, "<grader>", "exec"), namespace)  # noqa: S102 - the benchmark's own grader source
    _grade = namespace["grade"]


def _grade_row(row: tuple[dict, dict]) -> float:
    return _grade(*row)  # type: ignore[misc]


def unsandboxed(source: str, workers: int, data: list[dict], chunk: int = 100) -> float:
    """Rows/s of a plain multiprocessing.Pool mapping the same grade function (no sandbox, no JSON)."""
    rows = [({"output_text": row["model_sample"]}, row["item"]) for row in data]
    with multiprocessing.get_context("fork").Pool(workers, initializer=_load_grade, initargs=(source,)) as mp:
        mp.map(_grade_row, rows[:1000], chunksize=chunk)
        start = time.perf_counter()
        mp.map(_grade_row, rows, chunksize=chunk)
        return len(rows) / (time.perf_counter() - start)


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
    plain = unsandboxed(source, workers, data)
    fresh = compiled_for(source, workers, **{"python.fresh_process": True})
    fresh.run_many(data[:workers])
    start = time.perf_counter()
    assert not any(r.failed for r in fresh.run_many(data[:1000]))
    forked = 1000 / (time.perf_counter() - start)
    p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
    print(
        f"  {name:9s} workers={workers}  cold {cold * 1000:4.0f} ms | sequential arun p50 {p50 * 1e6:4.0f} µs "
        f"p99 {p99 * 1e6:5.0f} µs {len(lat) / sum(lat):6,.0f}/s | concurrent arun {together:7,.0f}/s | "
        f"run_many {bulk:8,.0f}/s vs unsandboxed multiprocessing.Pool {plain:8,.0f}/s (x{bulk / plain:.2f}) | "
        f"fresh process {forked:5,.0f}/s  [{first.details['sandbox']}]"
    )


def shutdown_time(workers: int) -> float:
    """Seconds to end every warm worker of two sources (`workers` each)."""
    pool_module.shutdown()
    for i in range(2):
        compiled_for(f"def grade(sample, item):\n    return {i}.0\n", workers).run_many(rows(200 * workers))
    start = time.perf_counter()
    pool_module.shutdown()
    return time.perf_counter() - start


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
    ends = sorted(shutdown_time(cores) for _ in range(3))
    print(f"  pool shutdown, {2 * cores} warm workers of 2 sources: {ends[1] * 1000:.0f} ms (of 3: {', '.join(f'{e * 1000:.0f}' for e in ends)})")
    print(f"  baseline: fresh `python -c` per sample: {baseline():,.1f}/s")
    print(f"  floor: bare pipe round trip between two processes: {pipe_round_trip():.0f} µs")
    print("targets: run_many >= 100,000/s (trivial, 2 cores, full level); cold start <= 300 ms; shutdown <= 100 ms; fresh process >= 200/s; one call at a time via async >= 5,000/s")
    pool_module.shutdown()


if __name__ == "__main__":
    main()
