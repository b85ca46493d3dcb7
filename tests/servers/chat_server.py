"""A real OpenAI-compatible Chat Completions (and Embeddings) HTTP server for the model-grader tests and benchmark.

Run: ``python tests/servers/chat_server.py [--port 0] [--latency 0.05]``; it prints its base URL
(``http://127.0.0.1:<port>/v1``) on the first stdout line once it accepts connections.

It speaks HTTP/1.1 with keep-alive on a plain asyncio server (no framework), so hundreds of concurrent connections
cost one coroutine each. Replies are scripted per prompt: the text ``#script {...}`` anywhere in a message (the
last one wins) holds a JSON object with any of

- ``result``: reply ``{"steps": [...], "result": <value>}`` as the message content;
- ``content``: reply this exact content (invalid JSON, prose with embedded JSON, ...);
- ``refusal``: reply with ``message.refusal`` set and no content;
- ``finish_reason``: e.g. ``"length"``;
- ``fail``: ``{"status": 429, "times": 2, "retry_after": 0.05, "key": "k"}``: the first ``times`` requests with
  that key get that status (``times`` null: forever), then normal replies;
- ``hang``: ``true`` never answers, a number answers normally after that many seconds;
- ``reject_json_schema`` / ``reject_response_format``: an error naming `response_format` (status
  ``reject_status``, default 400) when the request asks for json_schema (or any response format);
- ``usage``: ``[prompt_tokens, completion_tokens, cached_tokens]``; ``latency``: seconds; ``model``: reported model;
- ``framing``: ``"chunked"`` (a chunked body), ``"gzip"`` (a gzip-encoded body) or ``"close"`` (no
  Content-Length: the body ends when the server closes the connection);
- ``drop``: ``{"times": 1, "key": "k"}``: the first ``times`` such requests get no answer, the connection closed.

Without a script the reply is the first enum label of a json_schema `result`, else ``result: 1.0``. The reported
model is the requested one plus ``--snapshot-suffix``.

Azure OpenAI's shape is served too: ``POST /openai/deployments/{deployment}/chat/completions?api-version=V`` (and
``/embeddings``) answers 400 without an ``api-version`` query and 401 without an ``api-key`` header, like Azure.

``GET /stats`` gives ``{"requests": n, "max_in_flight": m, "authorization": ..., "api_key": ..., "api_version":
..., "deployment": ...}`` (chat and embeddings requests received, failures included; most handled at once; the
last Authorization and api-key headers, api-version and Azure deployment seen), ``GET /requests`` the recorded
request bodies, ``GET /arrivals`` ``[time.time(), credential]`` of each chat and embeddings request as it
arrived (the credential is the Authorization or api-key header), ``POST /reset`` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import time
import zlib
from typing import Any
from urllib.parse import parse_qs

import httpx

MARKER = "#script "
FRAMING = "x-test-framing"
"""An internal header from `complete` to `handle`: how to frame (or drop) the answer; never sent."""


class ChatServer:
    def __init__(self, latency: float, snapshot_suffix: str, keep_bodies: int) -> None:
        self.latency = latency
        self.snapshot_suffix = snapshot_suffix
        self.keep_bodies = keep_bodies
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.authorization: str | None = None
        self.api_key: str | None = None
        self.api_version: str | None = None
        self.deployment: str | None = None
        self.bodies: list[dict[str, Any]] = []
        self.arrivals: list[tuple[float, str | None]] = []
        self.fail_counts: dict[str, int] = {}
        self.created = int(time.time())

    # -- HTTP ---------------------------------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path = line.decode("latin-1").split(" ", 2)[:2]
                length = 0
                credential = None
                azure_key = None
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value.strip())
                    elif name == "authorization":
                        credential = value.strip()
                    elif name == "api-key":
                        credential = azure_key = value.strip()
                body = await reader.readexactly(length) if length else b""
                status, payload, headers = await self.route(method, path, body, credential, azure_key)
                framing = headers.pop(FRAMING, None)
                if framing == "drop":
                    return
                data = json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                if framing == "gzip":
                    data = gzip.compress(data)
                    head.append("Content-Encoding: gzip")
                if framing == "chunked":
                    half = len(data) // 2
                    head.append("Transfer-Encoding: chunked")
                    data = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (data[:half], data[half:])) + b"0\r\n\r\n"
                elif framing == "close":
                    head.append("Connection: close")
                else:
                    head += [f"Content-Length: {len(data)}", "Connection: keep-alive"]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if framing == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def route(
        self, method: str, target: str, body: bytes, credential: str | None, azure_key: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        path, _, query = target.partition("?")
        if method == "GET" and path == "/stats":
            stats = {"requests": self.requests, "max_in_flight": self.max_in_flight, "authorization": self.authorization,
                     "api_key": self.api_key, "api_version": self.api_version, "deployment": self.deployment}
            return 200, stats, {}
        if method == "GET" and path == "/requests":
            return 200, self.bodies, {}
        if method == "GET" and path == "/arrivals":
            return 200, self.arrivals, {}
        if method == "POST" and path == "/reset":
            self.requests = 0
            self.max_in_flight = 0
            self.bodies.clear()
            self.arrivals.clear()
            self.fail_counts.clear()
            self.authorization = self.api_key = self.api_version = self.deployment = None
            return 200, {"ok": True}, {}
        endpoint = path.rstrip("/")
        route = "chat" if endpoint.endswith("/chat/completions") else "embeddings" if endpoint.endswith("/embeddings") else None
        if method != "POST" or route is None:
            return 404, _error(f"no route {method} {path}", "invalid_request_error"), {}
        if len(self.arrivals) < self.keep_bodies:
            self.arrivals.append((time.time(), credential))
        if endpoint.startswith("/openai/deployments/"):
            self.deployment = endpoint.split("/")[3]
            self.api_key = azure_key
            self.api_version = (parse_qs(query).get("api-version") or [None])[0]
            if not self.api_version:
                return 400, _error("Missing required query parameter: api-version", "invalid_request_error"), {}
            if not azure_key:
                message = "Access denied due to missing subscription key. Provide it in the api-key header."
                return 401, _error(message, "invalid_request_error"), {}
        else:
            self.authorization = credential
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error("the body is not JSON", "invalid_request_error"), {}
        self.requests += 1
        if route == "embeddings":
            return self.embed(request)
        if len(self.bodies) < self.keep_bodies:
            self.bodies.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.complete(request)
        finally:
            self.in_flight -= 1

    def scripted_failure(self, script: dict[str, Any]) -> tuple[int, Any, dict[str, str]] | None:
        fail = script.get("fail")
        if not fail:
            return None
        key = str(fail.get("key", ""))
        seen = self.fail_counts.get(key, 0)
        self.fail_counts[key] = seen + 1
        if fail.get("times") is None or seen < int(fail["times"]):
            status = int(fail.get("status", 500))
            headers = {"Retry-After": str(fail["retry_after"])} if "retry_after" in fail else {}
            return status, _error(f"scripted failure {seen + 1}", "server_error"), headers
        return None

    # -- Embeddings ---------------------------------------------------------------------------------------------

    def embed(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """`/v1/embeddings`: a deterministic bag of hashed character trigrams, 64 dimensions (for cosine tests)."""
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not request.get("model"):
            return 400, _error("'model' and 'input' (a string or an array of strings) are required", "invalid_request_error"), {}
        failure = self.scripted_failure(_script(texts))
        if failure is not None:
            return failure
        data = [{"object": "embedding", "index": i, "embedding": trigram_vector(t)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {"object": "list", "data": data, "model": request["model"], "usage": usage}, {}

    # -- Chat Completions ---------------------------------------------------------------------------------------

    async def complete(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(request.get("messages"), list) or not request.get("model"):
            return 400, _error("'model' and 'messages' are required", "invalid_request_error"), {}
        texts = list(_texts(request["messages"]))
        script = _script(texts)
        latency = float(script.get("latency", self.latency))
        if latency:
            await asyncio.sleep(latency)
        failure = self.scripted_failure(script)
        if failure is not None:
            return failure
        drop = script.get("drop")
        if drop:
            key = "drop:" + str(drop.get("key", ""))
            seen = self.fail_counts.get(key, 0)
            self.fail_counts[key] = seen + 1
            if seen < int(drop.get("times", 1)):
                return 200, None, {FRAMING: "drop"}
        hang = script.get("hang")
        if hang:
            await asyncio.sleep(3600 if hang is True else float(hang))
        response_format = request.get("response_format") or {}
        kind = response_format.get("type")
        if (script.get("reject_json_schema") and kind == "json_schema") or (script.get("reject_response_format") and kind):
            message = f"Invalid parameter: 'response_format' of type '{kind}' is not supported with this model."
            return int(script.get("reject_status", 400)), _error(message, "invalid_request_error", "response_format"), {}

        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if "refusal" in script:
            message["refusal"] = script["refusal"]
        elif "content" in script:
            message["content"] = script["content"]
        else:
            result = script["result"] if "result" in script else _default_result(response_format)
            steps = [{"description": "scripted reply", "conclusion": f"result {result}"}]
            message["content"] = json.dumps({"steps": steps, "result": result})
        reply_text = message["content"] or message["refusal"] or ""
        prompt_tokens, completion_tokens, cached = script.get(
            "usage", [sum(len(t.split()) for t in texts), len(reply_text.split()), 0]
        )
        return 200, {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": self.created,
            "model": script.get("model", request["model"] + self.snapshot_suffix),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": script.get("finish_reason", "stop")}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }, {FRAMING: script["framing"]} if "framing" in script else {}


def _texts(messages: list[Any]) -> Any:
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def _script(texts: list[str]) -> dict[str, Any]:
    for text in reversed(texts):
        at = text.rfind(MARKER)
        if at != -1:
            value, _ = json.JSONDecoder().raw_decode(text, at + len(MARKER))
            return value
    return {}


def trigram_vector(text: str, dims: int = 64) -> list[float]:
    """Counts of the text's lower-cased character trigrams hashed (stably, by crc32) into `dims` buckets."""
    vector = [0.0] * dims
    padded = f"  {text.lower()} "
    for i in range(len(padded) - 2):
        vector[zlib.crc32(padded[i : i + 3].encode()) % dims] += 1.0
    return vector


def _default_result(response_format: dict[str, Any]) -> Any:
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    enum = ((schema.get("properties") or {}).get("result") or {}).get("enum")
    return enum[0] if enum else 1.0


def _error(message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": None}}


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


class RunningServer:
    """This server started as a child process on a free 127.0.0.1 port (used by the tests and the benchmark)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        line = self.process.stdout.readline().strip() if self.process.stdout else ""
        if not line.startswith("http://"):
            self.close()
            raise RuntimeError(f"chat server did not start (said {line!r})")
        self.base_url = line
        self.root = line.rsplit("/v1", 1)[0]

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.root + "/stats").json()

    def requests(self) -> list[dict[str, Any]]:
        return httpx.get(self.root + "/requests").json()

    def arrivals(self) -> list[tuple[float, str | None]]:
        return [(t, c) for t, c in httpx.get(self.root + "/arrivals").json()]

    def reset(self) -> None:
        httpx.post(self.root + "/reset")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every reply")
    parser.add_argument("--snapshot-suffix", default="-2026-01-01", help="appended to the model name it reports")
    parser.add_argument("--keep-bodies", type=int, default=10000, help="request bodies kept for GET /requests")
    args = parser.parse_args()
    server = ChatServer(args.latency, args.snapshot_suffix, args.keep_bodies)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", args.port, backlog=4096)
    port = srv.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
