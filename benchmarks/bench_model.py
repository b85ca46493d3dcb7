"""Model-grader throughput against the test chat server with a fixed artificial latency.

For each concurrency (1, 16, 64, 256) it measures, in the same run:

- `server max`: the rate the server itself sustains at that concurrency, driven by a minimal raw keep-alive HTTP
  client (asyncio sockets, no SDK, no parsing beyond Content-Length), i.e. the best any client could get;
- `graders`: score_model samples/s through `CompiledGrader.run_many` (real `openai` client, shared limiter set to
  the same concurrency), and its ratio to `server max` (target >= 90 % at 64 and above);
- `ideal`: concurrency / latency, for reference.

Then the cache: a batch is graded with `models.cache_path` set, the server's counter is reset and the batch is
graded again; the rerun's hit rate (target 100 %) and the requests it made (target 0) come from the responses and
the server's own counter.

    python benchmarks/bench_model.py [--latency 0.05] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


def graders_rate(base_url: str, concurrency: int, batch: list[dict], cache_path: str | None = None) -> tuple[float, list]:
    values = {"models.base_url": base_url, "models.max_concurrency": concurrency}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request (seconds)")
    parser.add_argument("--rounds", type=int, default=10, help="requests per connection slot at each concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    args = parser.parse_args()

    with RunningServer("--latency", str(args.latency), "--keep-bodies", "0") as srv:
        host, port = srv.root.removeprefix("http://").split(":")
        graders_rate(srv.base_url, 4, rows(8, "warmup"))
        print(f"test server latency {args.latency * 1000:.0f} ms; samples/s (best of 2 runs each)")
        print(f"{'concurrency':>11} {'samples':>8} {'ideal':>9} {'server max':>11} {'graders':>9} {'ratio':>7}")
        for c in args.concurrency:
            n = max(40, c * args.rounds)
            server_max = max(asyncio.run(raw_rate(host, int(port), c, n)) for _ in range(2))
            ours = max(graders_rate(srv.base_url, c, rows(n, f"c{c}-r{r}"))[0] for r in range(2))
            ideal = c / args.latency
            print(f"{c:>11} {n:>8} {ideal:>9.0f} {server_max:>11.0f} {ours:>9.0f} {ours / server_max:>7.1%}")

        with tempfile.TemporaryDirectory() as tmp:
            cache = str(Path(tmp) / "bench.sqlite")
            batch = rows(2000, "cache")
            cold, _ = graders_rate(srv.base_url, 64, batch, cache)
            srv.reset()
            warm, out = graders_rate(srv.base_url, 64, batch, cache)
            hits = sum(1 for r in out if r.details.get("cache") == "hit")
            requests = srv.stats()["requests"]
        print(
            f"cache: {len(batch)} samples, first run {cold:.0f}/s; rerun {warm:.0f}/s, "
            f"hit rate {hits / len(batch):.1%}, requests to the server {requests}"
        )


if __name__ == "__main__":
    main()
