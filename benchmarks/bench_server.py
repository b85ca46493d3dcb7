"""`graders serve` throughput and latency beside a bare ASGI endpoint served the same way.

Three servers run one after another, each a child process on uvicorn with the same settings (loop, HTTP parser,
no access log): a bare ASGI app returning a fixed JSON body (the string_check answer), `graders serve` grading a
`string_check`, and `graders serve` grading a trivial `python` grader. Debian's `wrk` (C, one thread, a Lua script
for the POST body) drives each at concurrency 1 and 64 over keep-alive connections; it uses a fraction of a core,
so the load generator is not the bottleneck. Printed: requests/s, p50 and p99 latency, the server's CPU time per
request (its process and its python workers), and the ratios to the bare endpoint measured in the same rounds
(target: string_check >= 70 % of the bare requests/s at 64). Requests/s moves with whatever else the machine runs;
CPU per request much less, so both ratios are printed.

    apt-get install wrk; python benchmarks/bench_server.py [--duration 3] [--rounds 4]

On a shared 2-core machine the server and wrk compete for the same cores with whatever else runs: repeat, and read
ranges rather than one figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from graders.options import Options  # noqa: E402
from graders.server.isolation import full_isolation_available  # noqa: E402
from servers.graders_server import GradersServer  # noqa: E402

RUN = "/v1/fine_tuning/alpha/graders/run"
STRING_CHECK = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
PYTHON = {"type": "python", "name": "trivial", "source": "def grade(sample, item):\n    return 1.0\n"}
CONCURRENCY = (1, 64)


def bare_app(body: bytes) -> Any:
    """The floor: a raw ASGI app that reads the request body and answers a fixed JSON body."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_bare(body_file: str) -> None:
    """Child process: the bare app on uvicorn, configured as `graders serve` configures it."""
    import uvicorn

    from graders.server.app import UVICORN_SETTINGS, bind

    sock = bind("127.0.0.1", 0)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    config = uvicorn.Config(bare_app(Path(body_file).read_bytes()), **UVICORN_SETTINGS)
    uvicorn.Server(config).run(sockets=[sock])


class BareServer:
    def __init__(self, body: bytes) -> None:
        self._file = tempfile.NamedTemporaryFile(suffix=".json")
        self._file.write(body)
        self._file.flush()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve-bare", self._file.name], stdout=subprocess.PIPE, text=True)
        self.root = (self.process.stdout.readline() if self.process.stdout else "").strip().rsplit("/v1", 1)[0]
        if not self.root.startswith("http://"):
            raise RuntimeError("the bare server did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._file.close()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every live descendant (python workers included)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            ticks[int(entry)] = int(fields[11]) + int(fields[12])
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in family]
        family.update(children)
        frontier += children
    return sum(ticks.get(p, 0) for p in family) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body: bytes, connections: int, duration: float, pid: int) -> dict[str, float]:
    """requests/s, p50/p99 latency (ms) and the server's CPU per request (µs) from one wrk run, after a one-second
    warm-up run. CPU per request hardly depends on what else the machine runs; requests/s does."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\nwrk.headers["Content-Type"] = "application/json"\n')
        script.flush()
        base = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", script.name, url]
        subprocess.run([*base[:3], "-d1s", *base[3:]], capture_output=True, check=True)
        cpu = tree_cpu(pid)
        out = subprocess.run([*base[:3], f"-d{duration:g}s", *base[3:]], capture_output=True, text=True, check=True).stdout
        cpu = tree_cpu(pid) - cpu
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"errors while benchmarking {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "cpu_us": cpu / requests * 1e6,
    }


def _ms(out: str, label: str) -> float:
    value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def measure(duration: float, rounds: int) -> dict[tuple[str, int], list[dict[str, float]]]:
    """Per concurrency, `rounds` rounds of the three servers back to back, so each round's ratios compare
    figures taken seconds apart (the machine's load changes more slowly than that)."""
    import httpx

    string_body = json.dumps({"grader": STRING_CHECK, "model_sample": "Paris", "item": {"answer": "Paris"}}).encode()
    python_body = json.dumps({"grader": PYTHON, "model_sample": "Paris", "item": {"answer": "Paris"}}).encode()
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    weak = [] if full_isolation_available(Options()) else ["--allow-weak-isolation"]
    with GradersServer(*weak) as srv:
        fixed = httpx.post(srv.root + RUN, content=string_body, headers={"content-type": "application/json"}).content
        checked = httpx.post(srv.root + RUN, content=python_body, headers={"content-type": "application/json"}).json()
        assert checked["reward"] == 1.0, checked
        bare = BareServer(fixed)
        try:
            for c in CONCURRENCY:
                for _ in range(rounds):
                    for name, root, body, pid in (
                        ("bare", bare.root, string_body, bare.process.pid),
                        ("string_check", srv.root, string_body, srv.process.pid),
                        ("python", srv.root, python_body, srv.process.pid),
                    ):
                        results.setdefault((name, c), []).append(wrk(root + RUN, body, c, duration, pid))
        finally:
            bare.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (after a 1 s warm-up)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per concurrency; ranges and medians are over rounds")
    parser.add_argument("--serve-bare", metavar="BODY_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench_server.py needs wrk: apt-get install wrk")
    level = "bubblewrap" if full_isolation_available(Options()) else "landlock"
    print(f"python sandbox level: {level}{'' if level == 'bubblewrap' else ' (server started with --allow-weak-isolation)'}")
    results = measure(args.duration, args.rounds)

    def span(values: list[float], fmt: str) -> str:
        lo, mid, hi = min(values), statistics.median(values), max(values)
        return f"{format(mid, fmt)} ({format(lo, fmt)}–{format(hi, fmt)})"

    print(f"\nmedian (range) over {args.rounds} rounds of {args.duration:g} s; 'per CPU' = requests per CPU-second of the server")
    print(f"{'endpoint':<13}{'conc.':>5}{'requests/s':>23}{'p50 ms':>20}{'p99 ms':>22}{'CPU µs/req':>18}{'rps vs bare':>17}{'per CPU vs bare':>17}")
    for name in ("bare", "string_check", "python"):
        for c in CONCURRENCY:
            runs, base = results[(name, c)], results[("bare", c)]
            ratio = [r["rps"] / b["rps"] * 100 for r, b in zip(runs, base)]
            per_cpu = [b["cpu_us"] / r["cpu_us"] * 100 for r, b in zip(runs, base)]
            print(
                f"{name:<13}{c:>5}{span([r['rps'] for r in runs], ',.0f'):>23}{span([r['p50'] for r in runs], '.2f'):>20}"
                f"{span([r['p99'] for r in runs], '.1f'):>22}{span([r['cpu_us'] for r in runs], '.0f'):>18}"
                f"{span(ratio, '.0f'):>15} %{span(per_cpu, '.0f'):>15} %"
            )
    pairs = list(zip(results[("string_check", 64)], results[("bare", 64)]))
    rps = statistics.median(r["rps"] / b["rps"] * 100 for r, b in pairs)
    cpu = statistics.median(b["cpu_us"] / r["cpu_us"] * 100 for r, b in pairs)
    print(
        f"\ntarget string_check >= 70 % of the bare endpoint's requests/s at concurrency 64: median {rps:.0f} % "
        f"({'met' if rps >= 70 else 'NOT met'}); per CPU-second: median {cpu:.0f} % ({'met' if cpu >= 70 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
