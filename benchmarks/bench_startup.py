"""Cold start as a whole process: `import graders` and `graders run` on one string_check, against bare Python.

Each command runs `--repeat` times (default 20), interleaved round-robin so that machine noise hits all three
alike, and prints min and median wall time with the ratio to `python -c "import json"` measured in the same run.
Target: `graders run` on one string_check sample ≤ 5× `python -c "import json"`.

    python benchmarks/bench_startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADER = str(ROOT / "fixtures" / "graders" / "exact_answer.json")
RUN_ARGS = ["run", GRADER, "--sample", "Paris", "--item", '{"answer": "Paris"}']


def graders_command() -> list[str]:
    """The `graders` console script beside this interpreter (what a user runs), else the same entry point via -c."""
    script = shutil.which("graders", path=str(Path(sys.executable).parent))
    if script:
        return [script, *RUN_ARGS]
    return [sys.executable, "-c", "import sys; from graders.cli import main; sys.exit(main())", *RUN_ARGS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    commands = {
        'python -c "import json"': [sys.executable, "-c", "import json"],
        'python -c "import graders"': [sys.executable, "-c", "import graders"],
        "graders run (one string_check)": graders_command(),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    check = subprocess.run(commands["graders run (one string_check)"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(check.stdout)["reward"] == 1.0, check.stdout

    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # one warm-up each (file cache, pyc)
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
    for _ in range(args.repeat):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
            times[name].append(time.perf_counter() - start)

    base = times['python -c "import json"']
    base_min, base_med = min(base), statistics.median(base)
    print(f"cold start, whole process, {args.repeat} runs each, interleaved ({os.cpu_count()} cores, {sys.version.split()[0]})")
    print(f"  {'command':32s} {'min ms':>8s} {'median ms':>10s} {'× json (min)':>13s} {'× json (median)':>16s}")
    for name, ts in times.items():
        lo, med = min(ts), statistics.median(ts)
        print(f"  {name:32s} {lo * 1000:8.1f} {med * 1000:10.1f} {lo / base_min:13.2f} {med / base_med:16.2f}")
    run = times["graders run (one string_check)"]
    print(f"target: graders run ≤ 5× import json; now {min(run) / base_min:.2f}× (min), {statistics.median(run) / base_med:.2f}× (median)")


if __name__ == "__main__":
    main()
