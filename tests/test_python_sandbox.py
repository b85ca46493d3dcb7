"""Hostile grader code (issue 4): each attack is contained and the pool keeps serving afterwards (spec §8.3, §8.4)."""

from __future__ import annotations

import time

import pytest

import graders
from graders import Options
from graders.evaluators.python.sandbox import choose_level

LIMITS = {"python.timeout_s": 3, "python.memory_bytes": 512 * 1024**2}
HEALTHY = {"type": "python", "source": "def grade(sample, item):\n    return 0.5\n"}


def hostile(body: str, **opts) -> graders.GraderRunResponse:
    source = "def grade(sample, item):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    return graders.run({"type": "python", "source": source}, "x", {}, options=Options().with_values({**LIMITS, **opts}))


def still_serving() -> None:
    assert graders.run(HEALTHY, "x", options=Options().with_values(LIMITS)).reward == 0.5


bwrap_only = pytest.mark.skipif(choose_level("auto") != "bubblewrap", reason="bubblewrap does not work on this machine")


@pytest.mark.parametrize("address", [("127.0.0.1", 22), ("8.8.8.8", 53)], ids=["loopback", "outside"])
def test_no_network(address):
    resp = hostile(f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect({address!r})\nreturn 1.0")
    assert resp.reward == 0.0 and resp.errors["python_grader_runtime_error"]
    assert "Error" in resp.errors["python_grader_runtime_error_details"]
    still_serving()


def test_parent_secrets_do_not_leak(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    resp = hostile("import os\nreturn 1.0 if any('sk-parent' in v for v in os.environ.values()) or 'OPENAI_API_KEY' in os.environ else 0.0", **{"python.workers": 1, "python.chunk_size": 7})
    assert resp.reward == 0.0 and not resp.failed


@bwrap_only
def test_cannot_write_outside_the_sandbox_tmp(tmp_path):
    target = tmp_path / "escaped.txt"
    resp = hostile(f"open({str(target)!r}, 'w').write('x')\nreturn 1.0")
    assert resp.errors["python_grader_runtime_error"] and not target.exists()
    assert hostile("open('/tmp/scratch.txt', 'w').write('ok')\nreturn 1.0").reward == 1.0


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
    still_serving()


def test_stdout_flood_is_capped():
    resp = hostile("for _ in range(200000):\n    print('x' * 100)\nreturn 1.0")
    assert resp.reward == 1.0 and len(resp.details["output"]) < 20_000 and "dropped" in resp.details["output"]


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


def test_strict_isolation_refuses_to_degrade(monkeypatch):
    from graders.evaluators.python import sandbox

    monkeypatch.setattr(sandbox, "_probed", {"bubblewrap": False, "namespaces": False})
    resp = hostile("return 1.0", **{"python.isolation": "strict", "python.workers": 3})
    assert resp.errors["python_grader_server_error"] and resp.errors["python_grader_server_error_type"] == "sandbox_unavailable"


def test_a_worker_left_with_child_processes_is_replaced():
    """A grade that leaves a process running taints its worker; the next grade starts in a clean sandbox."""
    opts = {"python.workers": 1, "python.chunk_size": 11}
    spawn = hostile("import subprocess\nsubprocess.Popen(['sleep', '300'])\nreturn 1.0", **opts)
    assert spawn.reward == 1.0
    count = hostile("import os\nreturn float(sum(1 for p in os.listdir('/proc') if p.isdigit()))", **opts)
    fresh = hostile("import os\nreturn float(sum(1 for p in os.listdir('/proc') if p.isdigit()))", **opts)
    assert count.reward == fresh.reward


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
