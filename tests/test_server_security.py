"""What `graders serve` protects against: other hosts, web pages, missing keys, big or many requests, options that
reach the server's machine, and python graders sent by strangers (§8.4, the local promise)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from graders import Options
from graders.server.isolation import full_isolation_available
from servers.chat_server import RunningServer
from servers.graders_server import GradersServer

RUN = "/v1/fine_tuning/alpha/graders/run"
STRING_CHECK = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
OK_BODY = {"grader": STRING_CHECK, "model_sample": "Paris", "item": {"answer": "Paris"}}
full_isolation = full_isolation_available(Options())


@pytest.fixture(scope="module")
def keyed() -> Any:
    with GradersServer(env={"GRADERS_API_KEY": "k-123"}) as srv:
        yield srv


def test_api_key_is_required_when_set(keyed: GradersServer) -> None:
    """`GRADERS_API_KEY`: no key or a wrong key is a 401 in OpenAI's envelope; the right one works, via the SDK too."""
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic k-123"}, {"api-key": "k-12"}):
        resp = keyed.run(OK_BODY, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key", headers
    assert keyed.run(OK_BODY, headers={"authorization": "Bearer k-123"}).json()["reward"] == 1.0
    assert keyed.run(OK_BODY, headers={"api-key": "k-123"}).json()["reward"] == 1.0
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.base_url, api_key="wrong", max_retries=0).fine_tuning.alpha.graders.validate(grader=STRING_CHECK)  # type: ignore[arg-type]
    sdk = openai.OpenAI(base_url=keyed.base_url, api_key="k-123", max_retries=0)
    assert sdk.fine_tuning.alpha.graders.validate(grader=STRING_CHECK).grader.name == "exact"  # type: ignore[arg-type, union-attr]
    assert keyed.health()["status"] == "ok"  # health needs no key


def test_api_key_flag_wins_over_the_environment() -> None:
    with GradersServer("--api-key", "flag-key", env={"GRADERS_API_KEY": "env-key"}) as srv:
        assert srv.run(OK_BODY, headers={"authorization": "Bearer env-key"}).status_code == 401
        assert srv.run(OK_BODY, headers={"authorization": "Bearer flag-key"}).status_code == 200


@pytest.fixture(scope="module")
def small() -> Any:
    with GradersServer("--max-body-bytes", "2000") as srv:
        yield srv


def test_oversized_body_is_a_413(small: GradersServer) -> None:
    """A declared Content-Length over the limit and a chunked body that grows past it both get 413."""
    big = {**OK_BODY, "model_sample": "x" * 5000}
    resp = small.run(big)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"
    assert "2000 bytes" in resp.json()["error"]["message"]

    def chunks() -> Any:
        yield b'{"grader": {"type": "string_check"}, "model_sample": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    chunked = httpx.post(small.root + RUN, content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert small.run(OK_BODY).status_code == 200


def test_non_json_content_type_is_refused(small: GradersServer) -> None:
    """A form or text POST (what a web page can send without a preflight) is a 415, never graded."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"content-type": content_type} if content_type else {}
        resp = httpx.post(small.root + RUN, content=b'{"grader": {}}', headers=headers)
        assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.post(small.root + RUN, json=OK_BODY, headers={"content-type": "application/json; charset=utf-8"}).status_code == 200


def test_foreign_host_header_is_refused(small: GradersServer) -> None:
    """DNS rebinding: a page's own name pointed at 127.0.0.1 arrives as its Host header, and is refused."""
    for host in ("evil.example", f"evil.example:{small.port}", f"127.0.0.1:{small.port + 1}", "10.0.0.1"):
        resp = httpx.post(small.root + RUN, json=OK_BODY, headers={"host": host})
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "host_not_allowed", host
    for host in (f"127.0.0.1:{small.port}", f"localhost:{small.port}", "localhost"):
        assert httpx.post(small.root + RUN, json=OK_BODY, headers={"host": host}).status_code == 200, host


def test_allowed_host_flag_adds_a_name() -> None:
    with GradersServer("--allowed-host", "graders.internal") as srv:
        assert httpx.post(srv.root + RUN, json=OK_BODY, headers={"host": "graders.internal"}).status_code == 200
        assert httpx.post(srv.root + RUN, json=OK_BODY, headers={"host": "other.internal"}).status_code == 403


def test_no_cors_headers_are_sent(small: GradersServer) -> None:
    """A preflight is not answered with CORS headers, so browsers never let a page send or read a request."""
    origin = {"origin": "https://evil.example"}
    preflight = httpx.options(small.root + RUN, headers={**origin, "access-control-request-method": "POST"})
    normal = httpx.post(small.root + RUN, json=OK_BODY, headers=origin)
    assert preflight.status_code == 405 and normal.status_code == 200
    for resp in (preflight, normal):
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_request_options_never_reach_the_servers_machine(small: GradersServer) -> None:
    """Only scoring options travel in a request: paths, endpoints, keys, interpreters, limits and isolation do not."""
    for name, value in (
        ("python.interpreter", "/bin/sh"),
        ("python.images_dir", "/"),
        ("python.isolation", "none"),
        ("python.timeout_s", 1e9),
        ("models.base_url", "http://127.0.0.1:1/v1"),
        ("models.api_key", "sk-x"),
        ("models.cache_path", "/tmp/owned.sqlite"),
        ("models.endpoints", []),
        ("text_similarity.meteor.wordnet_dir", "/etc"),
        ("text_similarity.meteor.wordnet_download", True),
        ("explain", True),
    ):
        resp = small.run({**OK_BODY, "options": {name: value}})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == f"options.{name}", name
    assert small.run({**OK_BODY, "options": "python.isolation=none"}).json()["error"]["param"] == "options"


def test_binding_beyond_loopback_warns() -> None:
    with GradersServer("--api-key", "k", host="0.0.0.0") as srv:
        assert "WARNING: listening on 0.0.0.0" in srv.stderr()
        assert httpx.post(srv.root + RUN, json=OK_BODY, headers={"authorization": "Bearer k"}).status_code == 200
    with GradersServer() as srv:
        assert "listening on" not in srv.stderr()


@pytest.fixture(scope="module")
def slow_chat() -> Any:
    with RunningServer("--latency", "0.6") as srv:
        yield srv


def test_overload_gives_429_with_retry_after(slow_chat: RunningServer) -> None:
    """Past --max-in-flight, /run answers 429 with Retry-After (which the openai SDK honours) at once."""
    judge = {
        "type": "score_model", "name": "slow", "model": "judge",
        "input": [{"role": "user", "content": "{{ sample.output_text }}"}],
    }
    with GradersServer("--max-in-flight", "2", "--retry-after", "3", "-o", f"models.base_url={slow_chat.base_url}") as srv:
        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as http:
                return await asyncio.gather(*(http.post(srv.root + RUN, json={"grader": judge, "model_sample": "x"}) for _ in range(8)))

        responses = asyncio.run(main())
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) >= 2 and statuses.count(429) >= 4 and set(statuses) == {200, 429}
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.headers["retry-after"] == "3" and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert srv.run(OK_BODY).status_code == 200  # slots come back


def test_request_time_limit(slow_chat: RunningServer) -> None:
    """A request that outlasts --request-timeout is a 504 in the envelope; the server goes on answering."""
    judge = {
        "type": "score_model", "name": "hang", "model": "judge",
        "input": [{"role": "user", "content": '{{ sample.output_text }} #script {"hang": 30}'}],
    }
    with GradersServer("--request-timeout", "1.5", "-o", f"models.base_url={slow_chat.base_url}") as srv:
        resp = srv.run({"grader": judge, "model_sample": "x"})
        assert resp.status_code == 504 and resp.json()["error"]["code"] == "request_timeout"
        assert srv.run(OK_BODY).json()["reward"] == 1.0


PY_OK = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 0.5\n"}


def test_python_refused_without_full_isolation() -> None:
    """No bubblewrap here (PATH without it): the server warns, python grades are `sandbox_unavailable` (also inside a
    multi), every other type works; --allow-weak-isolation runs them with the isolation there is."""
    env = {"PATH": "/nonexistent"}
    multi = {"type": "multi", "graders": {"py": PY_OK, "exact": STRING_CHECK}, "calculate_output": "py + exact"}
    with GradersServer(env=env) as srv:
        assert "full isolation (bubblewrap) is not available" in srv.stderr()
        errors = srv.run({"grader": PY_OK, "model_sample": "x"}).json()["metadata"]["errors"]
        assert errors["python_grader_server_error"] is True and errors["python_grader_server_error_type"] == "sandbox_unavailable"
        combined = srv.run({"grader": multi, "model_sample": "Paris", "item": {"answer": "Paris"}}).json()
        assert combined["sub_rewards"] == {"py": 0.0, "exact": 1.0} and combined["metadata"]["errors"]["python_grader_server_error"]
        assert srv.run(OK_BODY).json()["reward"] == 1.0
        assert srv.post("/v1/fine_tuning/alpha/graders/validate", {"grader": PY_OK}).status_code == 200
        assert srv.health()["python_graders"] == "refused"
    with GradersServer("--allow-weak-isolation", env=env) as srv:
        body = srv.run({"grader": PY_OK, "model_sample": "x"}).json()
        if _others_can_run(sys.executable):
            assert body["reward"] == 0.5
        else:  # the level without namespaces cannot bind a private interpreter (e.g. a pyenv under 0700 /root)
            assert body["metadata"]["errors"]["python_grader_server_error_type"] == "sandbox_unavailable"


def _others_can_run(path: str) -> bool:
    """Whether an unprivileged uid can search every directory above `path` (what the landlock level needs)."""
    return all(os.stat(parent).st_mode & 0o001 for parent in Path(os.path.realpath(path)).parents)


# -- hostile python over HTTP: one attack per line of §8.4's local promise -----------------------------------------

SECRET = "s3cr3t-graders-token"


class Listener:
    """A loopback TCP listener that records whether anything connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def attacks(port: int) -> dict[str, str]:
    """Each grader returns 1.0 only if its attack worked."""
    return {
        "read_etc_shadow": "def grade(s, i):\n    open('/etc/shadow').read()\n    return 1.0\n",
        "reach_loopback": (
            "import socket\n"
            f"def grade(s, i):\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n    return 1.0\n"
        ),
        "learn_engine_secrets": (
            "import os\n"
            "def grade(s, i):\n"
            "    seen = str(dict(os.environ))\n"
            "    for pid in os.listdir('/proc'):\n"
            "        for f in ('environ', 'cmdline'):\n"
            "            try:\n"
            "                seen += open(f'/proc/{pid}/{f}', 'rb').read().decode('latin-1')\n"
            "            except Exception:\n"
            "                pass\n"
            f"    return 1.0 if {SECRET!r} in seen else 0.0\n"
        ),
        "fork_bomb": "import os\ndef grade(s, i):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
        "outlast_the_clock": "import signal\ndef grade(s, i):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n",
        "huge_reply": "def grade(s, i):\n    return 'x' * (300 * 1024 * 1024)\n",
        "exhaust_memory": "def grade(s, i):\n    blocks = [bytearray(1024 ** 3) for _ in range(8)]\n    return 1.0\n",
        "read_another_graders_file": (
            "import os\n"
            "def grade(s, i):\n    return 1.0 if os.path.exists('/tmp/left-by-another-grader') else 0.0\n"
        ),
    }


# Run before `read_another_graders_file`: a different source that leaves a file behind in its worker's /tmp.
LEAVE_A_FILE = "def grade(s, i):\n    open('/tmp/left-by-another-grader', 'w').write('x')\n    return 0.0\n"


@pytest.fixture(scope="module")
def hostile_server() -> Any:
    listener = Listener()
    env = {"GRADERS_TEST_SECRET": SECRET, "OPENAI_API_KEY": SECRET}
    with GradersServer("-o", "python.timeout_s=3", env=env) as srv:
        yield srv, listener
    listener.close()


@pytest.mark.parametrize(
    "attack",
    [
        "read_etc_shadow",
        "reach_loopback",
        "learn_engine_secrets",
        "fork_bomb",
        "outlast_the_clock",
        "huge_reply",
        "exhaust_memory",
        "read_another_graders_file",
    ],
)
def test_hostile_python_over_http_is_contained(hostile_server: tuple[GradersServer, Listener], attack: str) -> None:
    """A stranger's python grader: HTTP 200, the attack fails (never a reward of 1.0), nothing reaches the host
    listener, and the server keeps answering other requests. Without full isolation it never runs at all."""
    srv, listener = hostile_server
    if attack == "read_another_graders_file":
        assert srv.run({"grader": {"type": "python", "name": "writer", "source": LEAVE_A_FILE}, "model_sample": "x"}).status_code == 200
    resp = srv.run({"grader": {"type": "python", "name": attack, "source": attacks(listener.port)[attack]}, "model_sample": "x"}, timeout=120)
    assert resp.status_code == 200
    body = resp.json()
    assert body["reward"] != 1.0
    if not full_isolation:
        assert body["metadata"]["errors"]["python_grader_server_error_type"] == "sandbox_unavailable"
    assert listener.connections == 0
    assert srv.run(OK_BODY).json()["reward"] == 1.0 and srv.health()["status"] == "ok"
