"""JSON for the hot paths, and the one rule for values JSON cannot hold (docs/behaviour.md §5.7).

Encoding is orjson (about 10x the standard library here), with the standard library for what orjson refuses.
Decoding JSON text (`loads`) is strict RFC 8259: no `NaN`/`Infinity` literals, no lone surrogates (a `\\ud800`
escape, or bytes that are not UTF-8), at most `MAX_DEPTH` levels of arrays and objects, so that nothing the engine
decodes can later make it recurse past its stack or write text it cannot encode.

Values that arrive already decoded (an item passed from Python, a body the server's fallback parser read) are
checked where a grade uses them, by `value_problem`: the same refusals, each naming the field and, for text, the
byte offset. A row holding such a value is answered with `other_error` ("invalid row: …") and never graded.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 200
"""Levels of arrays and objects a value may have; deeper ones are refused (a stack-safe margin below both
orjson's and the standard library's recursion limits)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_STEPS = 12


class Unsendable(ValueError):
    """A value JSON cannot hold here: `field` names where it is, `problem` says why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"'{field}' {problem}")
        self.field = field
        self.problem = problem


class JSONTextError(ValueError):
    """Text that is not JSON this engine accepts: `msg` says why, `lineno`/`colno` where (1-based; 0 if unknown)."""

    def __init__(self, msg: str, lineno: int = 0, colno: int = 0) -> None:
        super().__init__(msg if not lineno else f"{msg} (line {lineno}, column {colno})")
        self.msg = msg
        self.lineno = lineno
        self.colno = colno


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


def dumps_value(value: Any, field: str) -> bytes:
    """`value` (one field of a row) as JSON bytes, or `Unsendable` naming the first part that breaks the rule:
    nesting past `MAX_DEPTH`, NaN or ±Infinity, text that is not valid Unicode, a type JSON has no form for.

    orjson writes NaN as `null`, so an output holding `null` is checked for non-finite numbers before it is
    trusted, and only an output with more brackets than `MAX_DEPTH` is walked for its depth.
    """
    try:
        out = orjson.dumps(value)
    except TypeError:
        try:
            out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            _raise_problem(value, field)
            out = json.dumps(value, separators=(",", ":")).encode()  # integers past 64 bits
    if b"null" in out:
        _raise_problem(value, field, finite_only=True)
    if len(out) > MAX_DEPTH and out.count(b"[") + out.count(b"{") > MAX_DEPTH:
        _raise_problem(value, field)
    return out


def _raise_problem(value: Any, field: str, *, finite_only: bool = False) -> None:
    found = value_problem(value, field, finite_only=finite_only)
    if found is not None:
        raise Unsendable(*found)


def text_problem(text: str, *, escapes: bool = False) -> str | None:
    """Why `text` is not valid Unicode (a lone surrogate, which is how undecodable bytes arrive), or None.
    `escapes`: the text came from valid UTF-8 JSON, so a surrogate can only be a `\\u` escape, never a byte."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    char = found.group()
    offset = len(text[: found.start()].encode("utf-8"))
    if not escapes and "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8, kept by `surrogateescape`
        return f"is not valid UTF-8: byte {ord(char) - 0xDC00:#04x} at byte {offset} of the text"
    return f"is not valid Unicode: a lone surrogate U+{ord(char):04X} at byte {offset} of the text"


def value_problem(value: Any, root: str, *, finite_only: bool = False, escapes: bool = False) -> tuple[str, str] | None:
    """(field, why) for the first part of `value` that breaks the rule (see `dumps_value`), or None.

    `finite_only` looks for non-finite numbers alone (orjson has checked the rest). Iterative, so a value of any
    depth is safe to inspect.
    """
    from .errors import join_path

    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            problem = None if finite_only else text_problem(node, escapes=escapes)
            if problem is not None:
                return path, problem
        elif isinstance(node, float):
            if node - node != 0.0:
                return path, f"is {_float_name(node)}, which JSON cannot hold"
        elif node is None or isinstance(node, int):
            continue
        elif isinstance(node, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                return path, f"is nested deeper than {MAX_DEPTH} levels"
            items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            if isinstance(node, dict) and not finite_only:
                for key, _ in items:
                    problem = text_problem(key, escapes=escapes) if isinstance(key, str) else None
                    if problem is not None:
                        return join_path(path, key), f"is a key that {problem}"
            if depth < _SHOWN_STEPS:
                children = [(child, join_path(path, key if isinstance(key, (str, int)) else str(key)), depth + 1) for key, child in items]
            else:  # a path deeper than this is shown cut, not as thousands of steps
                shown = path if path.endswith("…") else path + "…"
                children = [(child, shown, depth + 1) for _, child in items]
            stack.extend(reversed(children))
        elif not finite_only:
            return path, f"is a {type(node).__name__}, which JSON cannot hold"
    return None


def _float_name(x: float) -> str:
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def _no_constant(name: str) -> Any:
    raise JSONTextError(f"{name} is not a JSON number")


def loads(text: str | bytes, *, whole: str = "the input") -> Any:
    """Strict JSON (see the module text); raises `JSONTextError` saying why and where `text` is not accepted
    (`whole` names what `text` is in a message about a byte offset, e.g. "the line")."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads_slow(text, whole)
    if len(text) > MAX_DEPTH:
        brackets = text.count("[") + text.count("{") if isinstance(text, str) else text.count(b"[") + text.count(b"{")
        if brackets > MAX_DEPTH and value_problem(value, "") is not None:
            return _loads_slow(text, whole)
    return value


def _loads_slow(text: str | bytes, whole: str) -> Any:
    """What orjson refused, told apart: bytes that are not UTF-8, bad JSON, or JSON breaking the rule."""
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONTextError(undecodable(raw, whole)) from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise JSONTextError(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise JSONTextError(exc.msg, exc.lineno, exc.colno) from None
    found = value_problem(value, "", escapes=True)
    if found is not None:
        field, problem = found
        raise JSONTextError(f"'{field}' {problem}" if field else f"it {problem}")
    return value


def undecodable(raw: bytes, whole: str = "the input") -> str:
    """Why `raw` is not UTF-8: the first bad byte and its offset in `whole` (what `raw` is, e.g. "the line"), and
    the JSON field holding it when the rest of `raw` parses."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset, byte = exc.start, raw[exc.start]
    else:
        return "it is valid UTF-8"
    where = f"byte {byte:#04x} at byte {offset} of {whole}"
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return f"it is not valid UTF-8: {where}"
    found = value_problem(value, "")
    if found is None or not found[0]:
        return f"it is not valid UTF-8: {where}"
    return f"'{found[0]}' is not valid UTF-8: {where}"
