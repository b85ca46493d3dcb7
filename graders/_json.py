"""JSON encoding for the hot paths: orjson (about 10x the standard library here), the standard library for what
orjson refuses (integers past 64 bits, lone surrogates in strings)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """`value` as compact JSON bytes; raises TypeError only for what no JSON can hold.

    Plain orjson first: `OPT_NON_STR_KEYS` costs about 40 % more on every dict, and JSON-born data has string keys.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
