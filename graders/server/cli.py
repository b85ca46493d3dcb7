"""`graders serve`: the command line of the server (the one place its environment variable is read)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from ..cli import InputError, _add_option_flags, _load_grader, _options
from ..errors import GraderValidationError
from .limits import Limits

API_KEY_ENV = "GRADERS_API_KEY"


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
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
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
