"""How python workers are started, isolated, limited, pooled and ended (§8.3, §8.4; docs/sandbox.md).

The attacks on each line of the local promise are in test_python_promise.py; these are the sandbox's own rules:
levels and their fallback, uids, pools per source and their caps, fast shutdown, and ordinary hostile code
(loops, bombs, exits, floods, forged frames) that must leave the pool serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import graders
from graders import Options
from graders.evaluators.python import pool as pool_module
from graders.evaluators.python.sandbox import check_hello, uids

LIMITS = {"python.timeout_s": 3, "python.memory_bytes": 512 * 1024**2}
HEALTHY = {"type": "python", "source": "def grade(sample, item):\n    return 0.5\n"}
HERE = Path(__file__).resolve().parent
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (per-worker uids, other users)")
full_level = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)")


def hostile(body: str, **opts) -> graders.GraderRunResponse:
    source = "def grade(sample, item):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    return graders.run({"type": "python", "source": source}, "x", {}, options=Options().with_values({**LIMITS, **opts}))


def still_serving() -> None:
    assert graders.run(HEALTHY, "x", options=Options().with_values(LIMITS)).reward == 0.5


def run_engine(script: str, *prefix: str, env: dict | None = None) -> dict:
    """Run `script` (which prints one JSON line) in a fresh engine process, optionally under a wrapper."""
    done = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


# -- levels ------------------------------------------------------------------------------------------------------


@full_level
def test_auto_takes_the_full_level_with_a_venv_under_tmp(tmp_path):
    """The first real worker is the probe, so an interpreter in a fresh venv under /tmp (hidden by the sandbox's
    private /tmp unless bound) runs at the full level, not a silent downgrade."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    resp = hostile("import sys\nreturn 1.0 if sys.prefix.startswith('/tmp') else 0.0", **{"python.interpreter": str(venv / "bin" / "python")})
    assert resp.reward == 1.0 and resp.details["sandbox"] == "bubblewrap" and "sandbox_warning" not in resp.details


@as_root
@full_level
def test_an_interpreter_under_a_0700_directory_works_at_the_full_level_only():
    """Bubblewrap binds just the interpreter's directories (parents made 0755 inside), so a venv in a 0700
    directory works; at the landlock level the sandbox uid cannot reach it, and the grade says which path and
    what to do."""
    base = Path(tempfile.mkdtemp(prefix="graders-0700-"))
    try:
        base.chmod(0o755)
        private = base / "private"
        private.mkdir(mode=0o700)
        venv = private / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        interpreter = str(venv / "bin" / "python")
        full = hostile("return 0.75", **{"python.interpreter": interpreter})
        assert full.reward == 0.75 and full.details["sandbox"] == "bubblewrap"
        refused = hostile("return 0.75", **{"python.interpreter": interpreter, "python.isolation": "landlock"})
        assert refused.errors["python_grader_server_error"] and refused.errors["python_grader_server_error_type"] == "sandbox_unavailable"
        error = refused.details["error"]
        assert f"{private} (mode 0o700) cannot be searched" in error and "python.interpreter" in error
    finally:
        shutil.rmtree(base)


PROBE_STRICT = """
import json, graders
from graders import Options
out = {}
for isolation in ("strict", "auto"):
    r = graders.run({"type": "python", "source": "import os\\ndef grade(s, i):\\n    return float(os.getuid() != 0)\\n"}, "x",
                    options=Options().with_values({"python.isolation": isolation, "python.interpreter": "/usr/bin/python3"}))
    out[isolation] = [r.reward, r.errors.get("python_grader_server_error_type"), r.details.get("sandbox"), r.details.get("error", "")[:300], r.details.get("sandbox_warning")]
print(json.dumps(out))
"""


@full_level
def test_without_namespaces_strict_refuses_and_auto_falls_back_with_a_warning():
    """Under a seccomp filter that refuses namespaces (a container's default), `strict` fails with
    sandbox_unavailable naming bubblewrap's error, and `auto` runs unprivileged at the landlock level, saying what
    is missing in the response and once on stderr."""
    out = run_engine(PROBE_STRICT, sys.executable, str(HERE / "no_namespaces.py"))
    reward, kind, level, error, _ = out["strict"]
    assert reward == 0.0 and kind == "sandbox_unavailable" and "strict" in error and "bubblewrap" in error
    reward, kind, level, _, warning = out["auto"]
    assert reward == 1.0 and level == "landlock" and "apt-get install bubblewrap" in warning
    assert out["stderr"].count("graders: warning: python graders run at the 'landlock' level") == 1


def test_hello_check_refuses_root_capabilities_and_missing_filters():
    """A worker whose first frame shows uid 0, a capability, no no_new_privs or no seccomp never gets grader code."""

    class Started:
        uid, lease, level = 1234, None, "bubblewrap"

    good = {"Uid": "1234\t1234\t1234\t1234", "CapInh": "0", "CapPrm": "0", "CapEff": "0", "CapBnd": "0", "CapAmb": "0", "NoNewPrivs": "1", "Seccomp": "2"}
    assert check_hello(good, Started) is None
    for change, words in [({"Uid": "0\t0\t0\t0"}, "uid 0"), ({"CapEff": "20"}, "CapEff"), ({"CapBnd": "1ff"}, "CapBnd"), ({"NoNewPrivs": "0"}, "no_new_privs"), ({"Seccomp": "0"}, "seccomp")]:
        problem = check_hello({**good, **change}, Started)
        assert problem and words in problem
    assert "did not report" in check_hello(None, Started)


@as_root
def test_each_worker_runs_as_its_own_uid_from_the_range():
    """As root, two workers of one pool and the workers of two sources all have different unprivileged uids."""
    opts = Options().with_values({**LIMITS, "python.workers": 2, "python.chunk_size": 50, "python.uid_range": (1_900_100_000, 1_900_100_999)})
    source = "import os, time\ndef grade(sample, item):\n    time.sleep(0.002)\n    return float(os.getuid())\n"
    seen = {r.reward for r in graders.compile({"type": "python", "source": source}, opts).run_many([{"model_sample": s} for s in ["x"] * 400])}
    other = graders.compile({"type": "python", "source": source + "# another source\n"}, opts).run("x").reward
    assert len(seen) == 2 and other not in seen
    assert all(1_900_100_000 <= uid <= 1_900_100_999 for uid in (*seen, other))


@as_root
def test_uid_leases_are_exclusive_across_processes():
    """Two engine processes never hold the same uid: leases are flocks in a root-only directory."""
    held = uids.lease((1_900_200_000, 1_900_200_001))
    try:
        script = "from graders.evaluators.python.sandbox import uids; print(uids.lease((1_900_200_000, 1_900_200_001)).uid)"
        other = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
        assert {held.uid, other} == {1_900_200_000, 1_900_200_001}
    finally:
        held.release()


# -- pools -------------------------------------------------------------------------------------------------------

COUNTER = "calls = []\n\ndef grade(sample, item):\n    calls.append(1)\n    return float(len(calls))\n"


def test_warm_workers_are_capped_and_the_least_recently_used_pool_goes_first():
    """With python.max_warm_workers = 2, a third source retires the worker of the least recently used one."""
    pool_module.shutdown()
    opts = Options().with_values({**LIMITS, "python.workers": 1, "python.max_warm_workers": 2})
    a, b, c = (graders.compile({"type": "python", "source": COUNTER + f"# {name}\n"}, opts) for name in "abc")
    assert [a.run("x").reward, b.run("x").reward, a.run("x").reward] == [1.0, 1.0, 2.0]
    assert c.run("x").reward == 1.0  # b was the least recently used: its worker made room
    assert [a.run("x").reward, b.run("x").reward] == [3.0, 1.0]
    assert pool_module._registry.live <= 2


def test_cold_starts_in_flight_are_bounded():
    """Many new sources at once never start more than MAX_STARTING workers together, and all of them grade."""
    pool_module.shutdown()
    pool_module._registry.peak_starting = 0
    opts = Options().with_values({**LIMITS, "python.workers": 1})
    compiled = [graders.compile({"type": "python", "source": f"def grade(sample, item):\n    return {i} / 10\n"}, opts) for i in range(6)]

    async def together():
        return await asyncio.gather(*(c.arun("x") for c in compiled))

    assert [r.reward for r in asyncio.run(together())] == [i / 10 for i in range(6)]
    assert 1 <= pool_module._registry.peak_starting <= pool_module.MAX_STARTING


def test_pool_shutdown_is_fast():
    """Every warm worker ends in well under 100 ms: all are signalled at once, none waits for SIGTERM."""
    pool_module.shutdown()
    opts = Options().with_values({**LIMITS, "python.workers": 2})
    for i in range(2):
        graders.compile({"type": "python", "source": f"def grade(sample, item):\n    return {i}.0\n"}, opts).run_many([{"model_sample": s} for s in ["x"] * 300])
    workers = [w for p in pool_module._registry.pools.values() for w in p._idle]
    assert len(workers) == 4
    started = time.perf_counter()
    pool_module.shutdown()
    elapsed = time.perf_counter() - started
    assert all(w.process.poll() is not None for w in workers)
    assert elapsed < 0.1, f"shutdown took {elapsed * 1000:.0f} ms"


# -- ordinary hostile code ---------------------------------------------------------------------------------------


def test_infinite_loop_times_out_within_the_limit_U27():
    start = time.monotonic()
    resp = hostile("while True:\n    pass", **{"python.timeout_s": 1.5})
    assert time.monotonic() - start < 6
    assert resp.reward == 0.0 and "exceeded 1.5 s" in resp.errors["python_grader_runtime_error_details"]
    still_serving()


def test_timeout_as_server_error_switch_U27():
    resp = hostile("import time\ntime.sleep(10)", **{"python.timeout_s": 1, "python.limit_violation_flag": "server_error"})
    assert resp.errors["python_grader_server_error"] and resp.errors["python_grader_server_error_type"] == "timeout"


def test_memory_bomb_is_flagged():
    resp = hostile("x = bytearray(4 * 1024**3)\nreturn 1.0")
    assert resp.reward == 0.0 and "memory limit" in resp.errors["python_grader_runtime_error_details"]
    still_serving()


def test_fork_bomb_is_contained():
    resp = hostile("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", **{"python.timeout_s": 2})
    assert resp.reward == 0.0 and resp.failed
    still_serving()


@pytest.mark.parametrize(
    ("body", "flag"),
    [
        ("import os\nos._exit(0)", "python_grader_server_error"),
        ("import sys\nsys.exit(0)", "python_grader_runtime_error"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "python_grader_server_error"),
        ("raise KeyboardInterrupt", "python_grader_runtime_error"),
    ],
    ids=["os_exit", "sys_exit", "sigkill_self", "keyboard_interrupt"],
)
def test_exits_and_signals_are_errors_never_scores(body, flag):
    resp = hostile(body)
    assert resp.reward == 0.0 and resp.errors[flag] is True
    if flag == "python_grader_server_error":
        assert resp.errors["python_grader_server_error_type"] == "worker_crashed"
    still_serving()


def test_stdout_flood_is_capped():
    resp = hostile("for _ in range(200000):\n    print('x' * 100)\nreturn 1.0")
    assert resp.reward == 1.0 and len(resp.details["output"]) < 20_000 and "dropped" in resp.details["output"]


def test_worker_text_in_the_response_is_capped():
    """A traceback of a megabyte reaches the wire capped (WIRE_TEXT_CAP characters and a note of the rest)."""
    resp = hostile("raise ValueError('y' * 1_000_000)")
    details = resp.errors["python_grader_runtime_error_details"]
    assert 4000 < len(details) <= 4096 + 60


def test_fake_frames_and_closed_fds_cannot_change_the_reward():
    forge = (
        "import os, json, struct, sys\n"
        "fake = json.dumps({'seq': 1, 'row': 0, 'ok': True, 'value': 1.0, 'kind': 'builtins.float'}).encode()\n"
        "frame = struct.pack('>I', len(fake)) + fake\n"
        "sys.stdout.write(frame.decode('latin-1'))\n"
        "os.write(1, frame)\nos.write(2, frame)\n"
        "os.close(0)\nos.close(1)\nos.close(2)\n"
        "return 0.25"
    )
    resp = hostile(forge)
    assert resp.reward == 0.25
    still_serving()


def test_a_worker_left_with_child_processes_is_replaced():
    """A grade that leaves a process running taints its worker; the next grade starts in a clean sandbox."""
    opts = {"python.workers": 1, "python.chunk_size": 11}
    source = "import subprocess, os\ndef grade(sample, item):\n    if item.get('spawn'):\n        subprocess.Popen(['sleep', '300'])\n    return float(len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
    compiled = graders.compile({"type": "python", "source": source}, Options().with_values({**LIMITS, **opts}))
    before = compiled.run("x").reward
    compiled.run("x", {"spawn": True})
    assert compiled.run("x").reward == before


def test_a_worker_left_with_a_thread_is_replaced():
    """A thread left running could forge later replies from inside the worker, so it retires the worker too."""
    source = (
        "import threading, time\nseen = []\n\ndef grade(sample, item):\n    seen.append(1)\n"
        "    if item.get('spawn'):\n        threading.Thread(target=time.sleep, args=(300,), daemon=True).start()\n"
        "    return float(len(seen))\n"
    )
    compiled = graders.compile({"type": "python", "source": source}, Options().with_values({**LIMITS, "python.workers": 1, "python.chunk_size": 17}))
    assert [compiled.run("x", item).reward for item in ({}, {}, {"spawn": True}, {})] == [1.0, 2.0, 3.0, 1.0]


def test_cpu_cores_limit_U30():
    resp = hostile("import os\nreturn float(len(os.sched_getaffinity(0)))", **{"python.cpu_cores": 1, "python.workers": 1, "python.chunk_size": 13})
    assert resp.reward == 1.0


def test_uid_range_must_be_unprivileged():
    with pytest.raises(graders.OptionError, match="never root"):
        Options().with_values({"python.uid_range": (0, 10)})

