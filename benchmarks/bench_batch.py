"""Batch grading, JSONL to JSONL: `graders batch` at 1 worker and at all workers, against hand-written loops.

For 1 M `string_check` rows and 100 k rows each of `rouge_l`, `bleu`, `meteor`, a trivial python grader and a
`multi` of three string_checks and a rouge_l, prints the wall time of:

- `graders batch --workers 1` and `--workers N` (N = the cores this process may use), as a user runs it;
- the hand loop: one process reading lines with orjson, `compiled.run` per row, `orjson.dumps(model_dump())`;
- the same loop on `multiprocessing.Pool(N)` (`imap` over chunks of lines, one compiled grader per worker);

each a fresh process (interpreter start-up, imports and compile included in every figure), and the ratios the
targets are stated in. Then peak RSS of `graders batch` at 100 k and 1 M rows, python graders through `run_many`
against an unsandboxed `multiprocessing.Pool(N).map(grade_row, rows, chunksize=100)` over the same in-memory rows,
`run_many` at 200 k rows with the garbage collector on and off, and how long shards take to start with `fork` and
with `forkserver`.

Targets (2 cores): 1 → N workers >= 1.8x for every CPU-bound grader; `graders batch` <= 0.55x the hand loop and
no slower than the Pool loop; python through `run_many` >= 0.5x the unsandboxed Pool; RSS at 1 M within 10 % of
RSS at 100 k (beyond 8 bytes per row).

    python benchmarks/bench_batch.py [--scale 0.1] [--only string_check,bleu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import graders
from graders.batch.cores import available_cores

WORDS = ("the cat sat on a mat while dogs ran across green fields under bright blue skies and birds sang "
         "songs of old river towns where people walk slowly past shops selling bread cheese wine and fresh fish").split()
TRIVIAL = "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['answer'] else 0.0\n"


def _sc(name: str, op: str, ref: str) -> dict[str, Any]:
    return {"type": "string_check", "name": name, "input": "{{ sample.output_text }}", "reference": ref, "operation": op}


def _ts(metric: str) -> dict[str, Any]:
    return {"type": "text_similarity", "name": metric, "input": "{{ sample.output_text }}", "reference": "{{ item.reference }}", "evaluation_metric": metric}


GRADERS: dict[str, tuple[dict[str, Any], int]] = {
    "string_check": (_sc("exact", "eq", "{{ item.reference }}"), 1_000_000),
    "rouge_l": (_ts("rouge_l"), 100_000),
    "bleu": (_ts("bleu"), 100_000),
    "meteor": (_ts("meteor"), 100_000),
    "python": ({"type": "python", "name": "trivial", "source": TRIVIAL}, 100_000),
    "multi": ({"type": "multi", "name": "mix", "graders": {"eq": _sc("eq", "eq", "{{ item.reference }}"), "has": _sc("has", "ilike", "{{ item.word }}"),
                                                       "ne": _sc("ne", "ne", "nothing"), "rouge": _ts("rouge_l")},
               "calculate_output": "0.25 * eq + 0.25 * has + 0.25 * ne + 0.25 * rouge"}, 100_000),
}


def make_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        ref = " ".join(rnd.choices(WORDS, k=12))
        words = ref.split()
        for _ in range(rnd.randrange(4)):
            words[rnd.randrange(len(words))] = rnd.choice(WORDS)
        rows.append({"model_sample": " ".join(words), "item": {"reference": ref, "answer": ref, "word": words[0]}})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "wb") as sink:
        for start in range(0, len(rows), 10000):
            sink.write(b"".join(orjson.dumps(r) + b"\n" for r in rows[start:start + 10000]))


# -- the hand-written baselines (run in a fresh process by `--hand`) ----------------------------------------------------

_COMPILED: Any = None


def _init(grader: dict[str, Any]) -> None:
    global _COMPILED
    _COMPILED = graders.compile(grader)


def _grade_lines(lines: list[bytes]) -> bytes:
    out = []
    for line in lines:
        row = orjson.loads(line)
        out.append(orjson.dumps(_COMPILED.run(row["model_sample"], row["item"]).model_dump()) + b"\n")
    return b"".join(out)


def _chunks(handle: Any, size: int = 500) -> Any:
    chunk = []
    for line in handle:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def hand(grader_file: str, data: str, out: str, pool: int) -> None:
    grader = json.loads(Path(grader_file).read_text())
    with open(data, "rb") as source, open(out, "wb") as sink:
        if pool <= 1:
            _init(grader)
            for chunk in _chunks(source):
                sink.write(_grade_lines(chunk))
        else:
            with multiprocessing.Pool(pool, initializer=_init, initargs=(grader,)) as workers:
                for block in workers.imap(_grade_lines, _chunks(source)):
                    sink.write(block)


# -- measuring ---------------------------------------------------------------------------------------------------------


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, the largest process of the run) of a command, run through a fresh wrapper."""
    wrapper = [sys.executable, __file__, "--rss", "--", *cmd]
    start = time.perf_counter()
    proc = subprocess.run(wrapper, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, int(proc.stdout.strip().splitlines()[-1])


def best(cmd: list[str], repeat: int) -> tuple[float, float, int]:
    runs = [timed(cmd) for _ in range(repeat)]
    times = [t for t, _ in runs]
    return min(times), max(times), max(r for _, r in runs)


def graders_batch(grader: str, data: str, out: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "graders.cli", "batch", grader, data, "--out", out, "--workers", str(workers), "--force", "--quiet"]


def hand_cmd(grader: str, data: str, out: str, pool: int) -> list[str]:
    return [sys.executable, __file__, "--hand", grader, data, out, str(pool)]


_GRADE: Any = None


def _grade_row_fn(grade: Any, row: dict[str, Any]) -> float:
    return float(grade({"output_text": row["model_sample"]}, row["item"]))


def grade_row(row: dict[str, Any]) -> float:
    """The unsandboxed baseline: the grader's `grade` called in a Pool worker."""
    global _GRADE
    if _GRADE is None:
        namespace: dict[str, Any] = {}
        exec(TRIVIAL, namespace)  # noqa: S102
        _GRADE = namespace["grade"]
    return _grade_row_fn(_GRADE, row)


def python_vs_pool(n: int, cores: int) -> None:
    rows = make_rows(n, seed=3)
    compiled = graders.compile(GRADERS["python"][0])
    compiled.run_many(rows[:2000], workers=1)  # warm the sandbox workers
    figures = {}
    for workers in (1, cores):
        start = time.perf_counter()
        out = compiled.run_many(rows, workers=workers)
        figures[workers] = n / (time.perf_counter() - start)
        assert not any(r.failed for r in out), next(r for r in out if r.failed).details
    compiled.close()
    with multiprocessing.Pool(cores) as pool:
        pool.map(grade_row, rows[:1000], chunksize=100)
        start = time.perf_counter()
        pool.map(grade_row, rows, chunksize=100)
        baseline = n / (time.perf_counter() - start)
    print(f"\npython graders, {n} in-memory rows: unsandboxed Pool({cores}).map {baseline:,.0f} rows/s")
    for workers, rate in figures.items():
        print(f"  run_many(workers={workers}): {rate:,.0f} rows/s = {rate / baseline:.2f}x the Pool (target >= 0.5x)")


def gc_effect(n: int) -> None:
    compiled = graders.compile(GRADERS["string_check"][0])
    rows = make_rows(n, seed=5)
    figures = {}
    for label in ("gc on", "gc off"):
        if label == "gc off":
            gc.disable()
        start = time.perf_counter()
        kept = list(compiled.iter_run(rows, workers=1))
        figures[label] = time.perf_counter() - start
        gc.enable()
        del kept
    start = time.perf_counter()
    kept = compiled.run_many(rows, workers=1)
    figures["run_many (pauses gc)"] = time.perf_counter() - start
    del kept
    print(f"\nrun_many at {n} rows, string_check, one process: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items())
          + f"; on/off {figures['gc on'] / figures['gc off']:.2f}x")


def startup_cost(cores: int) -> None:
    """Time until `cores` shards are ready, per start method (fork shares what the parent loaded; forkserver
    imports and builds everything in each shard)."""
    from graders.batch.pipeline import ShardPool, shard_spec
    from graders.batch.shard import BlockWorker

    figures = []
    for name in ("string_check", "meteor"):
        compiled = graders.compile(GRADERS[name][0])
        for method in ("fork", "forkserver"):
            start = time.perf_counter()
            spec = shard_spec(compiled, cores)
            pool = ShardPool(spec, cores, method, BlockWorker(spec, compiled))
            figures.append(f"{name} {method} {(time.perf_counter() - start) * 1000:.0f} ms")
            pool.close()
    print(f"\nshard start-up, {cores} shards until ready: " + ", ".join(figures))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss":
        proc = subprocess.run(sys.argv[3:])
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        raise SystemExit(proc.returncode)
    if len(sys.argv) > 1 and sys.argv[1] == "--hand":
        hand(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every row count (0.1 for a quick look)")
    parser.add_argument("--only", help="comma-separated grader names")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the best and worst are shown")
    args = parser.parse_args()
    cores = available_cores()
    load = os.getloadavg()
    print(f"cores this process may use: {cores}; load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    names = args.only.split(",") if args.only else list(GRADERS)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        largest = max(int(GRADERS[name][1] * args.scale) for name in names)
        all_rows = make_rows(largest)
        header = f"{'grader':<13}{'rows':>9} {'batch w1':>10} {f'batch w{cores}':>10} {'hand':>9} {f'Pool({cores})':>9}   {'1→N':>5} {'vs hand':>8} {'vs Pool':>8}"
        print("\nwall seconds (best–worst of the repeats), JSONL to JSONL, each a fresh process\n" + header)
        rss: dict[int, int] = {}
        for name in names:
            grader, rows = GRADERS[name]
            rows = max(1000, int(rows * args.scale))
            gfile, data = base / f"{name}.json", base / f"{name}.jsonl"
            gfile.write_text(json.dumps(grader))
            write_jsonl(data, all_rows[:rows])
            out = str(base / "out.jsonl")
            w1 = best(graders_batch(str(gfile), str(data), out, 1), args.repeat)
            wn = best(graders_batch(str(gfile), str(data), out, cores), args.repeat)
            h1 = best(hand_cmd(str(gfile), str(data), out, 1), args.repeat)
            hn = best(hand_cmd(str(gfile), str(data), out, cores), args.repeat)
            if name == "string_check":
                rss[rows] = wn[2]
                small = max(1000, rows // 10)
                write_jsonl(data, all_rows[:small])
                rss[small] = best(graders_batch(str(gfile), str(data), out, cores), 1)[2]
            def span(f: tuple[float, float, int]) -> str:
                return f"{f[0]:.2f}" if args.repeat == 1 else f"{f[0]:.1f}–{f[1]:.1f}"
            print(f"{name:<13}{rows:>9} {span(w1):>10} {span(wn):>10} {span(h1):>9} {span(hn):>9}   {w1[0] / wn[0]:>4.2f}x {wn[0] / h1[0]:>7.2f}x {wn[0] / hn[0]:>7.2f}x")
        print("targets: 1→N >= 1.8x (CPU-bound); batch/hand <= 0.55x; batch/Pool <= 1.0x")
        if rss:
            (small, small_rss), (large, large_rss) = sorted(rss.items())
            allowance = (large - small) * 8 / 1024
            print(f"\npeak RSS of graders batch (largest process), string_check: {small} rows {small_rss / 1024:.1f} MiB, {large} rows "
                  f"{large_rss / 1024:.1f} MiB; growth beyond 8 B/row: {(large_rss - small_rss - allowance) / small_rss * 100:+.1f} % (target <= 10 %)")
    startup_cost(cores)
    if "python" in names:
        python_vs_pool(max(1000, int(100_000 * args.scale)), cores)
    gc_effect(max(1000, int(200_000 * args.scale)))


if __name__ == "__main__":
    main()
