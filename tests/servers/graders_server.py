"""`graders serve` started as a real child process on a free 127.0.0.1 port (for the server tests and benchmark)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

import httpx


class _ServerProcess:
    """A `graders` server command as a child process; its first stdout line is the URL it printed."""

    def __init__(self, command: list[str], env: dict[str, str] | None, looks_right: Any) -> None:
        self._err = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "graders.cli", *command],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
        )
        self.line = self.process.stdout.readline().strip() if self.process.stdout else ""
        if not looks_right(self.line):
            self.close()
            raise RuntimeError(f"graders {command[0]} did not start (said {self.line!r}; stderr: {self.stderr()[-2000:]})")

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._err.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GradersServer(_ServerProcess):
    """The server process; `base_url` is what it printed (`http://127.0.0.1:<port>/v1`), `stderr()` its warnings."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(["serve", "--host", host, "--port", "0", *args], env, lambda line: line.startswith("http://"))
        self.base_url = self.line
        self.root = self.line.rsplit("/v1", 1)[0]
        self.port = int(self.root.rsplit(":", 1)[1])

    def health(self) -> dict[str, Any]:
        return httpx.get(self.root + "/health", timeout=10).json()

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.root + path, json=body, timeout=kwargs.pop("timeout", 60), **kwargs)

    def run(self, body: Any, **kwargs: Any) -> httpx.Response:
        return self.post("/v1/fine_tuning/alpha/graders/run", body, **kwargs)


class PlaygroundServer(_ServerProcess):
    """`graders ui --no-browser FILES...` as a real child process: `url` is what it printed (with the key in its
    fragment), `root` the server's address and `key` the key it made."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, no_browser: bool = True) -> None:
        command = ["ui", *(["--no-browser"] if no_browser else []), *args]
        super().__init__(command, env, lambda line: line.startswith("http://") and "/#key=" in line)
        self.url = self.line
        self.root, self.key = self.line.split("/#key=", 1)

    def post(self, path: str, body: Any, *, key: bool = True, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.post(self.root + path, json=body, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)
