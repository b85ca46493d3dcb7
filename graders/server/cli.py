"""`graders serve` and `graders ui`: the command line of the server (the one place its environment is read)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import webbrowser
from typing import TextIO

from ..cli import InputError, _add_option_flags, _load_grader, _options
from ..errors import GraderValidationError
from .limits import Limits

API_KEY_ENV = "GRADERS_API_KEY"
CONSOLE_BROWSERS = frozenset({"www-browser", "links", "elinks", "lynx", "w3m"})
"""Browsers `webbrowser` may pick that would take over the terminal the server prints to: never opened."""


def _port(text: str) -> int:
    """A TCP port for argparse: 0 (a free one) to 65535, else the usual one-line usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 0 (a free one) to 65535")
    return port


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from .app import ServerConfig, serve
    except ImportError as exc:
        print(f"graders serve: {exc.name or exc} is not installed; pip install 'graders[server]'", file=sys.stderr)
        return 2
    try:
        limits = Limits(args.max_body_bytes, args.request_timeout, args.max_in_flight, args.retry_after)
        if min(limits.max_body_bytes, limits.max_in_flight, args.cache_size) < 1 or limits.request_timeout_s <= 0:
            raise InputError("--max-body-bytes, --max-in-flight, --cache-size and --request-timeout must be positive")
        config = ServerConfig(
            host=args.host,
            port=args.port,
            options=_options(args),
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            limits=limits,
            cache_size=args.cache_size,
            allow_weak_isolation=args.allow_weak_isolation,
            allowed_hosts=tuple(args.allowed_host or ()),
            reward_grader=_load_grader(args.reward_grader) if args.reward_grader else None,
        )
        serve(config, announce=lambda url: print(url, file=out, flush=True))
    except GraderValidationError as exc:
        print(f"graders serve: --reward-grader {args.reward_grader}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    """Fill in `graders serve` under the parser the CLI made for `serve`."""
    defaults = Limits()
    p.description = "Prints its base URL (http://HOST:PORT/v1) on the first line once it listens."
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others print a warning)")
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--api-key", help=f"require this key as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else none)")
    p.add_argument("--reward-grader", metavar="GRADER.json", help="add POST /get_reward for OpenRLHF with this grader")
    p.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, help="413 above this (default 16 MiB)")
    p.add_argument("--request-timeout", type=float, default=defaults.request_timeout_s, help="seconds per request, queueing included (default 300)")
    p.add_argument("--max-in-flight", type=int, default=defaults.max_in_flight, help="requests graded at once; then 429 (default 256)")
    p.add_argument("--retry-after", type=int, default=defaults.retry_after_s, help="Retry-After seconds sent with a 429 (default 1)")
    p.add_argument("--cache-size", type=int, default=256, help="compiled graders kept, least recently used evicted (default 256)")
    p.add_argument("--allowed-host", action="append", metavar="NAME[:PORT]", help="another Host header to accept (e.g. behind a proxy)")
    p.add_argument("--allow-weak-isolation", action="store_true", help="run python graders without the sandbox's full isolation")
    _add_option_flags(p)
    p.set_defaults(func=_serve)


def open_browser(url: str) -> bool:
    """Open `url` in the user's browser if there is a graphical one; False (never an error) when there is none."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if getattr(browser, "name", "") in CONSOLE_BROWSERS:
        return False
    try:
        return bool(browser.open(url))
    except Exception:  # noqa: BLE001 - a broken browser set-up must not stop the server
        return False


def _announce_ui(url: str, out: TextIO, browse: bool) -> None:
    print(url, file=out, flush=True)
    if browse:
        def go() -> None:
            if not open_browser(url):
                print("graders ui: no browser to open here; open the URL above in one.", file=sys.stderr, flush=True)

        threading.Thread(target=go, name="graders-ui-browser", daemon=True).start()


def _ui(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from .app import ServerConfig, serve
        from .playground import Opened
    except ImportError as exc:
        print(f"graders ui: {exc.name or exc} is not installed; pip install 'graders[server]'", file=sys.stderr)
        return 2
    try:
        opened = Opened.open(args.files)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.max_body_bytes < 1:
        raise InputError("--max-body-bytes must be positive")
    key = args.api_key or secrets.token_urlsafe(24)  # other users of this machine can reach loopback too
    config = ServerConfig(
        host="127.0.0.1",
        port=args.port,
        options=_options(args),
        api_key=key,
        limits=Limits(max_body_bytes=args.max_body_bytes),
        allow_weak_isolation=args.allow_weak_isolation,
        opened=opened,
    )
    try:
        # The key travels in the fragment, which the browser never sends; the page keeps it for its requests.
        serve(config, announce=lambda base: _announce_ui(f"{base.removesuffix('/v1')}/#key={key}", out, not args.no_browser))
    except OSError as exc:
        raise InputError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    return 0


def add_ui_cli(p: argparse.ArgumentParser) -> None:
    """Fill in `graders ui` under the parser the CLI made for `ui`."""
    p.description = (
        "Starts the server on 127.0.0.1 with a fresh key, prints the playground's URL (the key is in its #fragment) "
        "and opens it when a browser is there. GRADER.json files are offered in the editor; .jsonl files (batch "
        "outputs, --with-input outputs or rows) are served to the page a page of rows at a time."
    )
    p.add_argument("files", nargs="*", metavar="GRADER.json | OUT.jsonl", help="grader configs and JSONL files to open")
    p.add_argument("--port", type=_port, default=0, help="port (default 0: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL only")
    p.add_argument("--api-key", help="use this key instead of a fresh random one")
    p.add_argument("--max-body-bytes", type=int, default=Limits().max_body_bytes, help="largest request, e.g. pasted rows (default 16 MiB)")
    p.add_argument("--allow-weak-isolation", action="store_true", help="run python graders without the sandbox's full isolation")
    _add_option_flags(p)
    p.set_defaults(func=_ui)
