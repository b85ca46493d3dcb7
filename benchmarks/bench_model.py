"""Model-grader throughput against the test chat server with a fixed artificial latency, on both transports.

For each concurrency (1, 16, 64, 256) it measures, in the same run:

- `server max`: the rate the server itself sustains at that concurrency, driven by a minimal raw keep-alive HTTP
  client (asyncio sockets, no parsing beyond Content-Length) in a process of its own, as graders' client is, so
  both compete with the server for the CPU the same way: the best any client could get;
- `lean`, `sdk`: score_model samples/s through `CompiledGrader.run_many` with `models.transport` = "lean" and
  "openai_sdk" (shared limiter set to the same concurrency), and their ratio to `server max` (targets for the
  lean one: >= 90 % at 64, >= 80 % at 256);
- `ideal`: concurrency / latency, for reference.

The load average is printed before and after: figures taken while other work runs are noisy; repeat
(`--repeat`) and compare within one run.

Then the cache: a batch is graded with `models.cache_path` set, the server's counter is reset and the batch is
graded again; the rerun's hit rate (target 100 %) and the requests it made (target 0) come from the responses and
the server's own counter.

    python benchmarks/bench_model.py [--latency 0.05] [--rounds 10] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import graders  # noqa: E402
from graders import Options  # noqa: E402
from servers.chat_server import RunningServer  # noqa: E402

GRADER = {
    "type": "score_model",
    "name": "bench",
    "model": "bench-judge",
    "input": [
        {"role": "system", "content": "Score the answer from 0 to 1."},
        {"role": "user", "content": "Question {{ item.id }}. Answer: {{ sample.output_text }} #script {{ item.script }}"},
    ],
}


def rows(n: int, tag: str) -> list[dict]:
    return [{"model_sample": f"answer {tag}-{i}", "item": {"id": i, "script": {"result": (i % 10) / 10}}} for i in range(n)]


async def raw_rate(host: str, port: int, concurrency: int, total: int) -> float:
    """Requests/s the server sustains at `concurrency` keep-alive connections with a near-zero-cost client."""
    body = json.dumps(
        {"model": "bench-judge", "messages": [{"role": "user", "content": '#script {"result": 0.5}'}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        while remaining > 0:
            remaining -= 1
            writer.write(head + body)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


def server_max(host: str, port: int, concurrency: int, total: int) -> float:
    """`raw_rate` in a process of its own (best of two)."""
    code = (
        "import asyncio, sys; sys.path.insert(0, sys.argv[1]); from bench_model import raw_rate; "
        "print(max(asyncio.run(raw_rate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))) for _ in range(2)))"
    )
    here = str(Path(__file__).resolve().parent)
    args = [sys.executable, "-c", code, here, host, str(port), str(concurrency), str(total)]
    return float(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def graders_rate(
    base_url: str, concurrency: int, batch: list[dict], transport: str = "lean", cache_path: str | None = None
) -> tuple[float, list]:
    values = {"models.base_url": base_url, "models.max_concurrency": concurrency, "models.transport": transport}
    if cache_path:
        values["models.cache_path"] = cache_path
    with graders.compile(GRADER, Options().with_values(values)) as compiled:
        start = time.perf_counter()
        out = compiled.run_many(batch, chunk_size=len(batch))
        elapsed = time.perf_counter() - start
    failed = [r for r in out if r.failed]
    if failed:
        raise SystemExit(f"{len(failed)} samples failed, e.g. {failed[0].model_dump()['metadata']['errors']}")
    return len(batch) / elapsed, out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request (seconds)")
    parser.add_argument("--rounds", type=int, default=10, help="requests per connection slot at each concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--repeat", type=int, default=1, help="run the whole table this many times")
    args = parser.parse_args()

    with RunningServer("--latency", str(args.latency), "--keep-bodies", "0") as srv:
        host, port = srv.root.removeprefix("http://").split(":")
        for transport in ("lean", "openai_sdk"):
            graders_rate(srv.base_url, 4, rows(8, "warmup"), transport)
        print(f"test server latency {args.latency * 1000:.0f} ms; samples/s (best of 2 runs each); {os.cpu_count()} CPUs")
        for rep in range(args.repeat):
            print(f"run {rep + 1}: load average {load()}")
            print(f"{'concurrency':>11} {'samples':>8} {'ideal':>7} {'server max':>10} {'lean':>7} {'share':>6} {'sdk':>7} {'share':>6}")
            for c in args.concurrency:
                n = max(40, c * args.rounds)
                best = server_max(host, int(port), c, n)
                lean = max(graders_rate(srv.base_url, c, rows(n, f"l{rep}-c{c}-r{r}"))[0] for r in range(2))
                sdk = max(graders_rate(srv.base_url, c, rows(n, f"s{rep}-c{c}-r{r}"), "openai_sdk")[0] for r in range(2))
                print(
                    f"{c:>11} {n:>8} {c / args.latency:>7.0f} {best:>10.0f} {lean:>7.0f} {lean / best:>6.0%}"
                    f" {sdk:>7.0f} {sdk / best:>6.0%}"
                )
            print(f"  load average after: {load()}")

        with tempfile.TemporaryDirectory() as tmp:
            cache = str(Path(tmp) / "bench.sqlite")
            batch = rows(2000, "cache")
            cold, _ = graders_rate(srv.base_url, 64, batch, cache_path=cache)
            srv.reset()
            warm, out = graders_rate(srv.base_url, 64, batch, cache_path=cache)
            hits = sum(1 for r in out if r.details.get("cache") == "hit")
            requests = srv.stats()["requests"]
        print(
            f"cache: {len(batch)} samples, first run {cold:.0f}/s; rerun {warm:.0f}/s, "
            f"hit rate {hits / len(batch):.1%}, requests to the server {requests}"
        )


if __name__ == "__main__":
    main()
