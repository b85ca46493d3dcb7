"""The local promise (§8.4), line by line, against real hostile grader code (`promise_attacks.py`).

Every attack runs in four engines, named by the parameter `engine`:

- `root_full`: this test process, as root, at the full (`bubblewrap`) level;
- `user_full`: an engine process running as `nobody` from a venv made from Debian's python3 under /tmp;
- `root_landlock` and `user_landlock`: the same two under a seccomp filter that refuses namespaces, as a
  container's default profile does, so `auto` falls back to the `landlock` level and must say so.

After each attack, the other rows of its batch keep their own rewards and an honest grader in the same engine
scores correctly. What the attacks aim at lives outside the sandbox and is checked from here: listeners that
record every connection, files that must not be read or written, a canary process that must survive, and
processes that must not outlive their worker.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import promise_attacks as attacks

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
ENGINES = ("root_full", "user_full", "root_landlock", "user_landlock")
USER_VENV = Path(tempfile.gettempdir()) / "graders-test-user-venv"
DEBIAN_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="these tests start engines as other users: run them as root (CI does)")


class Host:
    """What attacks aim at outside the sandbox, for one engine: secrets, listeners, a canary, a marker."""

    def __init__(self, base: Path, owner: pwd.struct_passwd | None) -> None:
        self.base = base
        self.owner = owner
        self.secret = "sk-promise-" + os.urandom(8).hex()
        self.hits: list[tuple[str, bytes]] = []
        self.marker = f"{100000 + int.from_bytes(os.urandom(2), 'big')}.{int.from_bytes(os.urandom(3), 'big')}"
        base.mkdir(mode=0o755)
        if owner is None:
            home = Path(pwd.getpwuid(0).pw_dir)
            self.home_secret = home / f".graders-promise-{os.urandom(4).hex()}"
            self.cache_file = home / ".cache" / "graders" / f"promise-{os.urandom(4).hex()}"
            self.checkout_file = CHECKOUT / "README.md"
        else:
            home = base / "home"
            home.mkdir(mode=0o700)
            self.home_secret = home / "secret.txt"
            self.cache_file = home / ".cache" / "graders" / "secret"
            self.checkout_file = base / "checkout" / "README.md"
            self.checkout_file.parent.mkdir()
            shutil.copy(CHECKOUT / "README.md", self.checkout_file)
        self.home = home
        self.home_secret.write_text(self.secret)
        self.home_secret.chmod(0o600)
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        self.cache_file.write_text(self.secret)
        self.host_dir = base / "host"
        self.host_dir.mkdir()
        self.host_dir.chmod(0o777)
        if owner is not None:
            subprocess.run(["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(base / "home"), str(self.checkout_file.parent)], check=True)
        self._sockets: list[socket.socket] = []
        tcp = self._listen(socket.socket(), ("127.0.0.1", 0), "tcp")
        self.tcp_port = tcp.getsockname()[1]
        self.unix_path = str(base / "host.sock")
        self._listen(socket.socket(socket.AF_UNIX), self.unix_path, "unix")
        os.chmod(self.unix_path, 0o777)
        self.abstract_name = f"graders-promise-{os.urandom(4).hex()}"
        self._listen(socket.socket(socket.AF_UNIX), "\0" + self.abstract_name, "abstract")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        self.udp_port = udp.getsockname()[1]
        self._sockets.append(udp)
        threading.Thread(target=self._echo_udp, args=(udp,), daemon=True).start()
        self.shm_key, self._shm = self._shared_memory()
        canary_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
        self.canary = subprocess.Popen(["sleep", "1000"], **canary_user)

    def _shared_memory(self) -> tuple[int, int]:
        """A System V shared memory segment anyone may read (mode 0666) holding the secret."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmget.restype, libc.shmat.restype = ctypes.c_int, ctypes.c_void_p
        key = int.from_bytes(os.urandom(3), "big") + 1
        shmid = libc.shmget(key, 4096, 0o1000 | 0o666)
        address = libc.shmat(shmid, None, 0)
        ctypes.memmove(address, self.secret.encode(), len(self.secret))
        libc.shmdt(ctypes.c_void_p(address))
        return key, shmid

    def _listen(self, sock: socket.socket, address: Any, kind: str) -> socket.socket:
        sock.bind(address)
        sock.listen(8)
        self._sockets.append(sock)
        threading.Thread(target=self._accept, args=(sock, kind), daemon=True).start()
        return sock

    def _accept(self, sock: socket.socket, kind: str) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.hits.append((kind, conn.recv(256)))
                conn.sendall(b"hello")
            except OSError:
                self.hits.append((kind, b""))
            conn.close()

    def _echo_udp(self, sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(256)
            except OSError:
                return
            self.hits.append(("udp", data))
            sock.sendto(b"hello", peer)

    def context(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "secret": self.secret, "home_secret": str(self.home_secret), "checkout_file": str(self.checkout_file),
            "cache_file": str(self.cache_file), "host_dir": str(self.host_dir), "tcp_port": self.tcp_port,
            "udp_port": self.udp_port, "unix_path": self.unix_path, "abstract_name": self.abstract_name,
            "canary_pid": self.canary.pid, "marker": self.marker, "shm_key": self.shm_key, "options": options,
        }  # fmt: skip

    def marker_processes(self) -> list[int]:
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if self.marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                        found.append(int(name))
                except OSError:
                    continue
        return found

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        ctypes.CDLL(None).shmctl(self._shm, 0, None)  # IPC_RMID
        self.canary.kill()
        self.canary.wait()
        if self.owner is None:
            self.home_secret.unlink(missing_ok=True)
            self.cache_file.unlink(missing_ok=True)


def _user_venv(base: Path) -> Path:
    """A venv from Debian's python3 with this checkout installed (not editable: `nobody` cannot read the checkout),
    copied into `base` and owned by `nobody` there, so only the sandbox, not file modes, keeps grader code out of
    it. The cached venv that root installs into stays root's: root never runs anything `nobody` could change."""
    python = USER_VENV / "bin" / "python"
    if not python.exists():
        if not os.access(DEBIAN_PYTHON, os.X_OK):
            pytest.fail(f"{DEBIAN_PYTHON} is missing: apt-get install python3 python3-venv (the README's test command does)")
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(USER_VENV)], check=True, capture_output=True)
    info = USER_VENV.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        pytest.fail(f"{USER_VENV} is not a directory only root may change: remove it and run again")
    staging = base / "source"
    staging.mkdir()
    shutil.copytree(CHECKOUT / "graders", staging / "graders", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, staging / name)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(staging)], check=True, capture_output=True)
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(staging)], check=True, capture_output=True)
    copy = base / "venv"
    subprocess.run(["cp", "-a", str(USER_VENV), str(copy)], check=True)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(copy)], check=True)
    return copy / "bin" / "python"


def _purelibs() -> list[Path]:
    """Where the engines' interpreters keep their packages (found without running the user venv as root)."""
    return [Path(__import__("sysconfig").get_paths()["purelib"]), *Path(tempfile.gettempdir()).glob("graders-promise-*/venv/lib/python3*/site-packages")]


def _run_engine(base: Path, host: Host, command: list[str], options: dict[str, Any], owner: pwd.struct_passwd | None) -> dict[str, Any]:
    scripts = base / "scripts"
    scripts.mkdir(mode=0o755)
    for name in ("promise_attacks.py", "no_namespaces.py"):
        shutil.copy(HERE / name, scripts / name)
    ctx_path, out_path = base / "context.json", base / "results.json"
    ctx_path.write_text(json.dumps(host.context(options)))
    out_path.write_text("{}")
    if owner is not None:
        os.chown(out_path, owner.pw_uid, owner.pw_gid)
        command = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", *command]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(host.home), "OPENAI_API_KEY": host.secret}
    done = subprocess.run([*command, str(scripts / "promise_attacks.py"), str(ctx_path), str(out_path)], env=env, cwd="/", capture_output=True, text=True, timeout=1200)
    results = json.loads(out_path.read_text() or "{}")
    results["_engine"] = {"returncode": done.returncode, "stderr": done.stderr[-4000:]}
    return results


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory):
    """Each engine's attack results and its host, run once per session on first use."""
    made: dict[str, tuple[dict[str, Any], Host]] = {}
    root_base = Path(tempfile.mkdtemp(prefix="graders-promise-"))
    os.chmod(root_base, 0o755)
    venv: list[str] = []

    def user_python() -> str:
        if not venv:
            venv.append(str(_user_venv(root_base)))
        return venv[0]

    def get(engine: str) -> tuple[dict[str, Any], Host]:
        if engine not in made:
            base = root_base / engine
            owner = pwd.getpwnam("nobody") if engine.startswith("user") else None
            host = Host(base, owner)
            if engine == "root_full":
                ctx = {**host.context({}), **attacks.engine_facts()}
                results = attacks.run_all(ctx)
                results["_engine"] = {"returncode": 0, "stderr": ""}
            else:
                python = user_python()
                landlock = engine.endswith("landlock")
                engine_python = python if owner else sys.executable
                command = [engine_python, str(base / "scripts" / "no_namespaces.py"), engine_python] if landlock else [engine_python]
                options = {"python.interpreter": python} if landlock and not owner else {}
                results = _run_engine(base, host, command, options, owner)
            time.sleep(0.5)
            made[engine] = (results, host)
        return made[engine]

    yield get
    for _, host in made.values():
        host.close()
    shutil.rmtree(root_base, ignore_errors=True)


def _result(engines, engine: str, attack: str) -> tuple[dict[str, Any], Host]:
    results, host = engines(engine)
    assert attack in results, f"the {engine} engine produced no result for {attack}: {results.get('_engine')}"
    result = results[attack]
    assert "engine_error" not in result, result
    return result, host


def _contained(result: dict[str, Any], engine: str) -> dict[str, Any]:
    """The checks every attack shares: its neighbours keep their rewards, an honest grader still scores, the
    level is reported (and, without namespaces, the warning), and the attack did not get what it wanted."""
    level = "landlock" if engine.endswith("landlock") else "bubblewrap"
    assert result["batch"] == [0.25, 0.75] and result["batch_failed"] == [False, False], result
    assert result["honest"] == 0.5 and result["honest_sandbox"] == level, result
    attack = result["attack"]
    assert attack["reward"] != 1.0, attack
    if attack["sandbox"] is not None:
        assert attack["sandbox"] == level
    if level == "landlock":
        assert attack["warning"] and "bubblewrap" in attack["warning"] and "apt-get install bubblewrap" in attack["warning"]
    else:
        assert attack["warning"] is None
    return attack


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["read_etc_shadow", "read_home_secret", "read_checkout", "read_engine_cache", "connect_run_sockets"])
def test_promise_no_host_files(engines, engine, attack):
    """§8.4: no home directories, checkouts, /etc/shadow, engine caches or sockets under /run."""
    result, host = _result(engines, engine, attack)
    _contained(result, engine)
    assert result["attack"]["reward"] == 0.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["engine_environ", "engine_cmdline", "engine_memory", "inherited_descriptors", "ptrace_canary", "kill_everything"])
def test_promise_no_engine_secrets(engines, engine, attack):
    """§8.4: the engine's environment, memory, descriptors and command line stay out of reach, and so do its
    processes (a canary of the engine's uid survives ptrace and kill(-1))."""
    result, host = _result(engines, engine, attack)
    _contained(result, engine)
    assert host.canary.poll() is None, "the canary was killed"
    if attack != "kill_everything":
        assert result["attack"]["reward"] == 0.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["tcp_loopback", "udp_loopback", "host_unix_socket", "abstract_unix_socket", "host_sysv_shared_memory", "setns_to_host", "io_uring"])
def test_promise_no_network(engines, engine, attack):
    """§8.4: no network, loopback included, no Unix socket of the host (abstract names included), and no other
    channel to the host: its System V shared memory, its namespaces, io_uring."""
    result, host = _result(engines, engine, attack)
    attack_result = _contained(result, engine)
    assert not [hit for hit in host.hits if host.secret.encode() in hit[1]], host.hits
    assert attack_result["reward"] == 0.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["write_host_paths", "remount_and_unmount", "personality_no_aslr", "terminal_injection"])
def test_promise_no_lasting_writes(engines, engine, attack):
    """§8.4: nothing written outlives the worker or reaches the host: no host path, no interpreter file, no
    remount or unmount, no ASLR switched off, no input pushed into a terminal."""
    result, host = _result(engines, engine, attack)
    _contained(result, engine)
    assert list(host.host_dir.iterdir()) == []
    for purelib in _purelibs():
        assert not (purelib / "graders_promise_evil.pth").exists()
    if attack != "write_host_paths":
        assert result["attack"]["reward"] == 0.0
    assert not list(Path(tempfile.gettempdir()).glob("graders-worker-*/fill*"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["cross_config", "cross_config_fresh"])
def test_promise_one_config_cannot_touch_another(engines, engine, mode):
    """§8.4: patched builtins, json.loads and math.isclose, files in /tmp and 250 leaked descriptors of one config
    do not change a second config's score, and a config that snoops on its worker sees no other config's items
    (warm workers and fresh_process alike)."""
    results, _ = engines(engine)
    result = results[mode]
    assert "engine_error" not in result, result
    assert result["patcher"] == [1.0, 1.0]
    assert result["victim"] == [0.5, 0.5, 0.5]
    assert result["patient"] == [1.0, 1.0, 1.0]
    assert result["snooper"] == [0.0, 0.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_promise_keepalive_frames_do_not_extend_the_timeout(engines, engine):
    """§8.4: a grader that ignores SIGALRM and writes a valid empty frame every 0.5 s is still timed out (the
    deadline is absolute per row); the batch is three rows, two re-run after the kill."""
    result, _ = _result(engines, engine, "keepalive_frames")
    attack = _contained(result, engine)
    assert attack["flags"] == ["python_grader_runtime_error"] and "exceeded 1 s" in attack["text"]
    assert result["elapsed"] < 3 * (1 + 1.0) + 4


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["setsid_child_ignoring_sigterm", "setsid_daemon_after_return"])
def test_promise_detached_children_die_with_their_worker(engines, engine, attack):
    """§8.4: a child that calls setsid() and ignores SIGTERM dies with its worker, whether the grade times out
    or returns."""
    result, host = _result(engines, engine, attack)
    _contained(result, engine)
    deadline = time.monotonic() + 5
    while host.marker_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host.marker_processes() == []


@pytest.mark.parametrize("engine", ENGINES)
def test_promise_process_limit_holds(engines, engine):
    """§8.4: 600 processes attempted against a limit of 256 (RLIMIT_NPROC counts the worker's own uid).

    An engine running as a user shares that uid with the worker: the limit is the user's process count at start
    plus 256, and the user's other processes (other engines and workers of this suite) ending meanwhile leave
    room (docs/sandbox.md, level notes on line 7); the bound still holds far below 600."""
    result, _ = _result(engines, engine, "processes_600")
    attack = _contained(result, engine)
    assert attack["reward"] <= (0.256 if engine.startswith("root") else 0.3)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("attack", ["tmp_3gib", "dev_shm_3gib", "memory_3gib"])
def test_promise_memory_and_disk_limits_hold(engines, engine, attack):
    """§8.4: 3 GiB into /tmp or /dev/shm (RAM-backed) or into memory, with python.disk_bytes = 256 MiB and
    python.memory_bytes = 768 MiB: the writes stop at the limit or the grade fails with it."""
    result, _ = _result(engines, engine, attack)
    attack_result = _contained(result, engine)
    if attack == "memory_3gib":
        assert "memory limit" in attack_result["text"]
    elif attack_result["flags"]:
        assert "disk limit" in attack_result["text"], attack_result
    else:
        assert attack_result["reward"] <= 0.26


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("attack", "kind"),
    [("reply_40mb", "reply_too_large"), ("reply_1000_deep", "reply_too_deep"), ("reply_disallowed_type", "reply_invalid"), ("empty_frame_flood", "protocol_error")],
)
def test_promise_replies_cannot_crash_the_engine(engines, engine, attack, kind):
    """§8.4: a 40 MB reply, a 1000-deep reply, a reply of a type the protocol does not allow and a flood of empty
    frames each fail their own row with python_grader_server_error and a clear type, at once (well before the
    3 s timeout); the response stays small and dumps."""
    result, _ = _result(engines, engine, attack)
    attack_result = _contained(result, engine)
    assert attack_result["flags"] == ["python_grader_server_error"] and attack_result["type"] == kind
    assert attack_result["dump_chars"] < 20_000
    assert result["elapsed"] < 3 + 1.0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_self_kill_is_worker_crashed(engines, engine):
    """A grader that SIGKILLs itself is a crashed worker (it is never PID 1), not a value."""
    result, _ = _result(engines, engine, "sigkill_self")
    attack = _contained(result, engine)
    assert attack["flags"] == ["python_grader_server_error"] and attack["type"] == "worker_crashed"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_finished_cleanly(engines, engine):
    """The engine process itself survived every attack (it ran them all and exited 0)."""
    results, _ = engines(engine)
    assert results["_engine"]["returncode"] == 0, results["_engine"]
    assert set(attacks.ATTACKS) <= set(results)


@pytest.mark.parametrize("engine", ["root_landlock", "user_landlock"])
def test_without_namespaces_the_engine_warns_once(engines, engine):
    """Below the full level `auto` says so once on stderr, however many graders run (and in every response)."""
    results, _ = engines(engine)
    assert results["_engine"]["stderr"].count("graders: warning: python graders run at the 'landlock' level") == 1
