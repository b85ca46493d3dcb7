"""The hosted `{{ namespace.path }}` template grammar (§5.1) and rendering (§5.5, §5.6).

A template is compiled once per grader into literal parts and parsed references; rendering one sample is a walk
over those parts. This is deliberately not Jinja: Jinja accepts expressions, filters and loops that the hosted
renderer very likely rejects (§5.1), and a parsed-parts renderer is several times faster.

Grammar (strict, U7)::

    reference := "{{" WS* ("item" | "sample") segment+ WS* "}}"
    segment   := "." KEY | "[" DIGITS "]"        KEY := 1*(any char except . [ ] { } and whitespace)

`extended` adds `[-n]` (from the end) and quoted keys `["a.b c"]` / `['a']`. With U50
`template.json_string_steps = "parse"`, a step that meets a string holding JSON (a tool call's
`function.arguments`) goes on into the parsed value.

What a reference renders must be something JSON can hold (§5.7): text that is valid Unicode, finite numbers, at
most `MAX_DEPTH` levels; otherwise the row is refused with `other_error` naming the reference, never graded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._json import MAX_DEPTH, JSONTextError, loads, text_problem, value_problem
from .errors import InvalidInput, TemplateError, json_type
from .namespaces import SAMPLE_KEYS, ModelSample, Namespaces

_KNOWN_SAMPLE_KEYS = frozenset(SAMPLE_KEYS) | {"model", "input_tools"}  # U11 may add the last two
from .options import TemplateOptions

# A `{{ … }}` whose inside holds no further `{{`: in `{{ a {{ item.x }}` the first `{{` stays literal text.
_BRACES = re.compile(r"\{\{((?:(?!\{\{).)*?)\}\}", re.S)
_STRICT = re.compile(r"\s*(item|sample)((?:\.[^.\[\]{}\s]+|\[\d+\])+)\s*")
_EXTENDED = re.compile(r"""\s*(item|sample)((?:\.[^.\[\]{}\s]+|\[-?\d+\]|\["[^"]*"\]|\['[^']*'\])+)\s*""")
_SEGMENT = re.compile(r"""\.([^.\[\]{}\s]+)|\[(-?\d+)\]|\["([^"]*)"\]|\['([^']*)'\]""")


class Ref:
    """One parsed reference: the namespace, its steps (str keys, int indexes) and the source text."""

    __slots__ = ("root", "steps", "text")

    def __init__(self, root: str, steps: tuple[str | int, ...], text: str) -> None:
        self.root = root
        self.steps = steps
        self.text = text

    @property
    def path(self) -> str:
        return self.root + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.steps)


class BadRef:
    """A `{{ … }}` that does not match the grammar (U8 `error`): fails every render with invalid_variable_error."""

    __slots__ = ("text", "reason")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason


def _parse_ref(raw: str, inner: str, extended: bool) -> Ref | BadRef:
    m = (_EXTENDED if extended else _STRICT).fullmatch(inner)
    if m is None:
        stripped = inner.strip()
        if stripped in ("item", "sample"):
            reason = f"a reference needs a path after '{stripped}', e.g. {{{{ {stripped}.<key> }}}}"
        else:
            reason = "a reference must look like {{ item.<path> }} or {{ sample.<path> }} with .key and [n] steps"
        return BadRef(raw, reason)
    steps: list[str | int] = []
    for seg in _SEGMENT.finditer(m.group(2)):
        key, index, dq, sq = seg.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(key if key is not None else (dq if dq is not None else sq))
    return Ref(m.group(1), tuple(steps), raw)


class _Unrenderable(Exception):
    """A value that breaks the §5.7 rule; the renderer finds which part and names it."""


def _to_text_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        try:
            return json.dumps(value, allow_nan=False)
        except ValueError:
            raise _Unrenderable from None
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise _Unrenderable from None
    if len(text) > MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH and value_problem(value, "") is not None:
        raise _Unrenderable
    return text


def _to_text_python(value: Any) -> str:
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)
    if isinstance(value, str):
        return value
    if value_problem(value, "") is not None:
        raise _Unrenderable
    return str(value)


class Template:
    """A compiled template: `render(ns)` returns text or raises `TemplateError`."""

    __slots__ = ("source", "parts", "refs", "render", "_to_text", "_null_missing", "_json_flag", "_json_steps")

    def __init__(self, source: str, opts: TemplateOptions) -> None:
        self.source = source
        parts: list[str | Ref | BadRef] = []
        pos = 0
        for m in _BRACES.finditer(source):
            parsed = _parse_ref(m.group(0), m.group(1), opts.path_grammar == "extended")
            if isinstance(parsed, BadRef) and opts.unmatched_braces == "literal":
                continue
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            parts.append(parsed)
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])
        merged: list[str | Ref | BadRef] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        self.parts = tuple(merged)
        self.refs = tuple(p for p in self.parts if not isinstance(p, str))
        self._to_text = _to_text_json if opts.non_string_rendering == "json" else _to_text_python
        self._null_missing = opts.null_is_missing
        self._json_flag = opts.output_json_unavailable_flag
        self._json_steps = opts.json_string_steps == "parse"
        self.render = self._renderer()

    @property
    def problems(self) -> list[str]:
        """Syntax problems found at compile time (U48 reports these from `/validate`)."""
        return [f"{p.text}: {p.reason}" for p in self.refs if isinstance(p, BadRef)]

    @property
    def unreachable(self) -> list[str]:
        """References that parse but can never resolve on a hosted sample (§5.4): a key `sample` never has, or a
        step into `function.arguments`, a JSON string, while U50 is off. `/validate` reports them as warnings."""
        out = []
        for ref in self.refs:
            if isinstance(ref, BadRef) or ref.root != "sample":
                continue
            first = ref.steps[0]
            if isinstance(first, int):
                out.append(f"{ref.text}: sample is an object, so [{first}] never resolves")
            elif first not in _KNOWN_SAMPLE_KEYS:
                out.append(f"{ref.text}: sample has no key '{first}' (its keys are {', '.join(SAMPLE_KEYS)})")
            elif not self._json_steps and _steps_into_arguments(ref.steps):
                out.append(
                    f"{ref.text}: function.arguments is a JSON string, so a step into it resolves only with "
                    "template.json_string_steps=parse (U50)"
                )
        return out

    def _renderer(self) -> Callable[[Namespaces], str]:
        """`render(ns) -> str`, specialised once for this template's shape (constant, one reference, mixed).

        Every substituted text is checked to be valid Unicode (`isascii` answers at once for ASCII text)."""
        to_text = self._to_text
        if not self.refs:
            const = self.source

            def render_const(ns: Namespaces) -> str:
                return const

            return render_const
        if len(self.parts) == 1:
            ref = self.parts[0]
            get = self._getter(ref)  # type: ignore[arg-type]
            refuse = self._refuse

            def render_one(ns: Namespaces) -> str:
                value = get(ns)
                if value.__class__ is str:
                    if value.isascii():
                        return value
                    text = value
                else:
                    try:
                        text = to_text(value)
                    except _Unrenderable:
                        raise refuse(ref, value) from None
                if text_problem(text) is not None:
                    raise refuse(ref, value)
                return text

            return render_one
        pieces: tuple[tuple[str | Ref | BadRef, Callable[[Namespaces], Any] | None], ...] = tuple(
            (p, None) if isinstance(p, str) else (p, self._getter(p)) for p in self.parts
        )
        refuse = self._refuse

        def render_mixed(ns: Namespaces) -> str:
            out: list[str] = []
            for part, piece in pieces:
                if piece is None:
                    out.append(part)  # type: ignore[arg-type]
                    continue
                value = piece(ns)
                if value.__class__ is not str:
                    try:
                        value = to_text(value)
                    except _Unrenderable:
                        raise refuse(part, value) from None
                if not value.isascii() and text_problem(value) is not None:
                    raise refuse(part, value)
                out.append(value)
            return "".join(out)

        return render_mixed

    @staticmethod
    def _refuse(ref: Any, value: Any) -> InvalidInput:
        """The row's refusal for a value that breaks §5.7, naming the reference's path and the part inside it."""
        path = ref.path if isinstance(ref, Ref) else "value"
        found = value_problem(value, path)
        if found is None:  # a value whose own str() or JSON form fails: not JSON at all
            return InvalidInput(path, f"is a {type(value).__name__} that cannot be rendered as text")
        return InvalidInput(*found)

    def _getter(self, ref: Ref | BadRef) -> Callable[[Namespaces], Any]:
        """A fast lookup for one reference; any miss falls back to `resolve`, which names the failing step."""
        slow = self.resolve
        if isinstance(ref, BadRef):
            return lambda ns: slow(ref, ns)
        steps = ref.steps
        from_item = ref.root == "item"
        null_missing = self._null_missing

        def get(ns: Namespaces) -> Any:
            node: Any = ns.item if from_item else ns.sample
            try:
                for step in steps:
                    if step.__class__ is int and node.__class__ is not list:
                        raise TypeError
                    node = node[step]
            except (KeyError, IndexError, TypeError, ValueError):
                return slow(ref, ns)
            if node is None and null_missing:
                return slow(ref, ns)
            return node

        return get

    def resolve(self, ref: Ref | BadRef, ns: Namespaces) -> Any:
        """The value a reference points at (§5.1), or `TemplateError` naming the reference and the failing step."""
        if isinstance(ref, BadRef):
            raise TemplateError(f"invalid reference {ref.text}: {ref.reason}")
        node: Any = ns.item if ref.root == "item" else ns.sample
        for i, step in enumerate(ref.steps):
            if node.__class__ is str and self._json_steps:
                try:
                    node = loads(node)
                except JSONTextError as exc:
                    raise self._unresolved(ref, i, f"the string there is not JSON ({exc.msg})", ns) from None
            if isinstance(step, int):
                if node.__class__ is list and -len(node) <= step < len(node):
                    node = node[step]
                    continue
                problem = (
                    f"index {step} is out of range (length {len(node)})"
                    if isinstance(node, list)
                    else f"cannot index {json_type(node)} with [{step}]"
                )
            else:
                if node.__class__ is dict or isinstance(node, Mapping):
                    value = node.get(step, _ABSENT)
                    if value is not _ABSENT:
                        node = value
                        continue
                    problem = f"key '{step}' not found"
                else:
                    problem = f"cannot read key '{step}' from {json_type(node)}"
            raise self._unresolved(ref, i, problem, ns)
        if node is None and self._null_missing:
            raise TemplateError(f"{ref.text}: the value is null (template.null_is_missing)")
        return node

    def _unresolved(self, ref: Ref, index: int, problem: str, ns: Namespaces) -> TemplateError:
        where = Ref(ref.root, ref.steps[: index + 1], "").path
        flag = "invalid_variable_error"
        if (
            ref.root == "sample"
            and ref.steps[0] == "output_json"
            and isinstance(ns.sample, ModelSample)
            and not ns.sample.json_parsed
        ):
            flag = self._json_flag
            problem += " (sample.output_json is null: the model sample is not valid JSON)"
        return TemplateError(f"{ref.text} cannot be resolved at '{where}': {problem}", flag)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


_ABSENT = object()


def _steps_into_arguments(steps: tuple[str | int, ...]) -> bool:
    """Whether a sample path goes past `function.arguments` (a tool call's arguments, a JSON string, §5.4)."""
    for i in range(len(steps) - 2):
        if steps[i] == "function" and steps[i + 1] == "arguments":
            return True
    return False


def compile_template(source: str, opts: TemplateOptions) -> Template:
    """Parse `source` once into parts (§5.1); rendering never rescans substituted text (one pass)."""
    return Template(source, opts)
