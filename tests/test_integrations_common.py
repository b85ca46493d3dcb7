"""What every trainer adapter relies on: graders that survive a fork, sandbox pools sized to the process's share of
the CPUs, and grader sources given as dicts, paths or compiled graders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import graders
from graders.batch.cores import available_cores
from graders.integrations._common import compile_grader, resolve_options
from graders.integrations.trl import make_reward

PYTHON = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['answer'] else 0.25\n"}

FORK_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, signal, sys
    import graders
    from graders.evaluators.python import pool

    GRADER = json.loads(sys.argv[1])
    ROWS = [{"model_sample": str(i % 3), "item": {"answer": "0"}} for i in range(300)]
    EXPECTED = [1.0 if i % 3 == 0 else 0.25 for i in range(300)]
    compiled = graders.compile(GRADER)
    assert [r.reward for r in compiled.run_many(ROWS)] == EXPECTED   # the parent's loop thread and warm workers exist
    parent_workers = sorted(w.process.pid for p in pool._registry.pools.values() for w in p._idle)

    def child(which):
        signal.alarm(60)  # a hang ends the child, and the test sees its status
        graded = compiled if which == "inherited" else graders.compile(GRADER)
        assert [r.reward for r in graded.run_many(ROWS)] == EXPECTED
        assert graded.run("0", {"answer": "0"}).reward == 1.0
        mine = sorted(w.process.pid for p in pool._registry.pools.values() for w in p._idle)
        assert mine and not set(mine) & set(parent_workers), (mine, parent_workers)

    for which in ("inherited", "fresh"):
        pid = os.fork()
        if pid == 0:
            try:
                child(which)
            except BaseException as exc:
                print(f"child {which}: {exc!r}", file=sys.stderr)
                sys.exit(1)
            sys.exit(0)  # a normal exit: atexit stops the child's own workers, never the parent's
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, (which, os.waitstatus_to_exitcode(status))

    process = multiprocessing.get_context("fork").Process(target=child, args=("inherited",))
    process.start(); process.join(90)
    assert process.exitcode == 0, process.exitcode
    still = sorted(w.process.pid for p in pool._registry.pools.values() for w in p._idle)
    assert still == parent_workers and all(os.kill(pid, 0) is None for pid in still)
    assert [r.reward for r in compiled.run_many(ROWS)] == EXPECTED
    print("ok")
    """
)


def test_forked_child_grades_with_its_own_loop_and_workers() -> None:
    """After a python grader ran, a forked child (os.fork, multiprocessing 'fork') grades with the inherited
    compiled grader and with a new one: it forgets the parent's loop thread and workers and starts its own, and
    its exit leaves the parent's workers running."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT, json.dumps(PYTHON)], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


FD_SCRIPT = textwrap.dedent(
    """
    import json, os, stat, subprocess, sys
    import graders
    from graders.evaluators.python import pool

    GRADER = json.loads(sys.argv[1])
    ROWS = [{"model_sample": str(i % 3), "item": {"answer": "0"}} for i in range(200)]
    compiled = graders.compile(GRADER)
    compiled.run_many(ROWS)
    live = [w for p in pool._registry.pools.values() for w in p._idle]
    pids = sorted(w.process.pid for w in live)
    stopped = [w for p in pool._registry.pools.values() for w in p.take_idle()]
    freed = sorted(fd for w in stopped for fd in (w._in, w._out))
    pool.stop_all(stopped)  # still referenced: the child's at-fork handler sees them, their numbers free
    reused = [os.open("/dev/zero", os.O_RDONLY) for _ in range(len(freed) + 8)]
    assert set(freed) <= set(reused), (freed, reused)
    compiled.run_many(ROWS)  # new live workers, whose pipes the child must point at /dev/null, not close
    live = [w for p in pool._registry.pools.values() for w in p._idle]
    zero, null = os.stat("/dev/zero").st_rdev, os.stat(os.devnull).st_rdev

    pid = os.fork()
    if pid == 0:
        ok = all(os.fstat(fd).st_rdev == zero for fd in reused)
        ok = ok and all(os.fstat(fd).st_rdev == null for w in live for fd in (w._in, w._out))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for _ in range(20):  # a Popen with preexec_fn runs the at-fork handlers between fork and exec
        subprocess.run(["true"], preexec_fn=lambda: None, check=True)
    assert all(os.fstat(fd).st_rdev == zero for fd in reused)
    assert sorted(w.process.pid for p in pool._registry.pools.values() for w in p._idle) == sorted(w.process.pid for w in live)
    assert [r.reward for r in compiled.run_many(ROWS)] == [1.0 if i % 3 == 0 else 0.25 for i in range(200)]
    print("ok")
    """
)


def test_forked_child_never_closes_a_reused_fd_number() -> None:
    """The at-fork handler closes nothing the parent had freed and reused (workers stopped before the fork), points
    its copies of live workers' pipes at /dev/null rather than closing them, and, run by a `Popen` child between fork
    and exec, leaves the parent's workers serving."""
    done = subprocess.run([sys.executable, "-c", FD_SCRIPT, json.dumps(PYTHON)], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_pool_size_is_the_process_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun and accelerate set LOCAL_WORLD_SIZE: each rank gets cores ÷ ranks sandbox workers, not every core."""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert graders.Options().rl.local_processes == 2
    assert resolve_options(None).python.workers == max(1, available_cores() // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "one")  # not ours to refuse: ignored
    assert graders.Options().rl.local_processes is None
    assert resolve_options(None).python.workers == available_cores()
    assert resolve_options({"python.workers": 5}).python.workers == 5
    assert resolve_options(graders.Options().with_values({"python.workers": 3})).python.workers == 3


def test_grader_from_a_path_a_dict_or_compiled(tmp_path: Path) -> None:
    path = tmp_path / "grader.json"
    path.write_text(json.dumps(PYTHON))
    for source in (path, str(path), PYTHON):
        assert make_reward(source, log=False)(prompts=["p"], completions=["0"], answer=["0"]) == [1.0]
    compiled = graders.compile(PYTHON)
    assert compile_grader(compiled, None) is compiled
    with pytest.raises(ValueError, match="options cannot be given with a compiled grader"):
        compile_grader(compiled, {"python.workers": 1})
    with pytest.raises(ValueError, match="no such file"):
        make_reward(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        make_reward(tmp_path / "list.json")
