"""Where a row's sample and item come from, and what each output line looks like.

Input layouts: the `/run`-shaped row (`model_sample` or `sample`, and `item`), fields picked by dotted path
(`sample_field`, `item_field`, `item_from`), RFT training rows (§5.3: the row, with `messages` and `tools`, is the
item) paired with a samples file, and the lines a `with_input` run wrote (for `graders rescore`). Output shapes: the
wire response, `compact`, or `with_input` (`{"row", "id", "input", "response"}`). A row that cannot be mapped is a
bad row naming its line and the field; it is written like any other, and the rest go on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from .._json import JSONTextError, loads
from ..errors import BadRow

Output = Literal["wire", "compact", "with_input"]
_ABSENT: Any = object()


class RowError(Exception):
    """A row this layout cannot map; the message names the line and the field."""


def get_path(value: Any, path: tuple[str, ...]) -> Any:
    """`value` at a dotted path (a number indexes a list); `_ABSENT` when any step is missing."""
    for part in path:
        if value.__class__ is dict:
            value = value.get(part, _ABSENT)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def _set_path(into: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        into = into.setdefault(part, {})
    into[path[-1]] = value


def rft_item(row: dict[str, Any]) -> dict[str, Any]:
    """§5.3: an RFT training row as the grader's `item`: the whole row, each message gaining `"name": null`,
    `tools` null and `parallel_tool_calls` true unless the row sets them."""
    item = dict(row)
    messages = row.get("messages")
    if isinstance(messages, list):
        item["messages"] = [{**m, "name": m.get("name")} if isinstance(m, dict) else m for m in messages]
    item.setdefault("tools", None)
    item.setdefault("parallel_tool_calls", True)
    return item


def sample_fields(value: Any) -> dict[str, Any]:
    """A samples-file entry (a string, `{"model_sample"}`, `{"sample"}` or a bare structured sample) as row fields."""
    if value is None:
        raise RowError("no samples entry for this row (the samples file has fewer rows, or no row with its id)")
    if isinstance(value, str):
        return {"model_sample": value}
    if isinstance(value, dict):
        if "model_sample" in value:
            return {"model_sample": value["model_sample"]}
        if "sample" in value:
            return {"sample": value["sample"]}
        keys = {"output_text", "choices", "output_tools", "output_json"} & value.keys()
        if keys:
            return {"sample": {k: v for k, v in value.items() if k in ("choices", "output_text", "output_json", "output_tools", "output_reasoning_summary", "output_audio")}}
    raise RowError("a samples entry must be a string or an object with 'model_sample', 'sample' or 'output_text'")


@dataclass(frozen=True)
class Layout:
    """How rows are read and written; recorded in the resume sidecar and reused by `graders rescore`."""

    sample_field: str | None = None
    item_field: str | None = None
    item_from: tuple[str, ...] = ()
    rft: bool = False
    """Rows are `[training_row, samples_entry]` pairs built by the reader from two files."""
    id_field: str | None = None
    output: Output = "wire"
    details: bool = False
    unwrap: bool = False
    """Rows are lines of an earlier `with_input` output: grade their `input` again."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["item_from"] = list(self.item_from)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        return cls(**{**data, "item_from": tuple(data.get("item_from") or ())})

    def validate(self) -> None:
        """Refuse combinations that cannot mean anything, naming the options."""
        if self.item_field and self.item_from:
            raise ValueError("--item-field and --item-from both say where the item comes from; give one")
        if self.rft and (self.sample_field or self.item_field or self.item_from):
            raise ValueError("RFT rows (--samples) take the sample from the samples file and the item from the row; "
                             "--sample-field, --item-field and --item-from do not apply")
        for name, path in (("--sample-field", self.sample_field), ("--item-field", self.item_field), ("--id-field", self.id_field)):
            if path is not None and not all(path.split(".")):
                raise ValueError(f"{name} {path!r} is not a dotted path (an empty part)")

    @property
    def plain(self) -> bool:
        """Rows are used as they are (the fast path)."""
        return not (self.sample_field or self.item_field or self.item_from or self.rft or self.unwrap)


class RowMapper:
    """Turns one decoded JSON value into an engine row, or raises `RowError`."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._sample = tuple(layout.sample_field.split(".")) if layout.sample_field else None
        self._item = tuple(layout.item_field.split(".")) if layout.item_field else None
        self._item_from = [(name, tuple(name.split("."))) for name in layout.item_from]
        self._id = tuple(layout.id_field.split(".")) if layout.id_field else None

    def ident(self, value: Any) -> Any:
        """The row's `--id-field` value (None without one); a missing id is a bad row."""
        if self._id is None:
            return None
        source = value[0] if self.layout.rft and isinstance(value, list) and value else value
        found = get_path(source, self._id)
        if found is _ABSENT or isinstance(found, (dict, list)):
            raise RowError(f"--id-field {self.layout.id_field!r} is {'missing' if found is _ABSENT else 'not a string or number'}")
        return found

    def row(self, value: Any) -> Any:
        layout = self.layout
        if layout.rft:
            train, entry = value
            if not isinstance(train, dict):
                raise RowError(f"an RFT training row must be an object, got {type(train).__name__}")
            return {**sample_fields(entry), "item": rft_item(train)}
        if self._sample is None and self._item is None and not self._item_from:
            return value
        if not isinstance(value, dict):
            raise RowError(f"a row must be an object to pick fields from, got {type(value).__name__}")
        row: dict[str, Any] = {}
        if self._sample is not None:
            sample = get_path(value, self._sample)
            if sample is _ABSENT:
                raise RowError(f"--sample-field {layout.sample_field!r} is missing")
            if isinstance(sample, dict):
                row["sample"] = sample
            else:
                row["model_sample"] = sample
        else:
            for key in ("model_sample", "sample", "reference_answer"):
                if key in value:
                    row[key] = value[key]
        if self._item is not None:
            item = get_path(value, self._item)
            if item is _ABSENT:
                raise RowError(f"--item-field {layout.item_field!r} is missing")
            row["item"] = item
        elif self._item_from:
            built: dict[str, Any] = {}
            for name, path in self._item_from:
                found = get_path(value, path)
                if found is _ABSENT:
                    raise RowError(f"--item-from column {name!r} is missing")
                _set_path(built, path, found)
            row["item"] = built
        elif self._sample is not None:
            row["item"] = value  # only the sample was picked: the whole row is the item
        else:
            row["item"] = value.get("item")
        return row


def decode_line(raw: bytes, number: int, mapper: RowMapper | None) -> tuple[Any, Any, bytes]:
    """(engine row, id, input JSON) of one input line; a bad line gives a `BadRow` naming its line."""
    try:
        value = loads(raw, whole="the line")  # strict JSON, its message naming the field and column (§5.7)
    except JSONTextError as exc:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        where = f" at column {exc.colno}" if exc.colno else ""
        return BadRow(f"line {number} is not valid JSON: {exc.msg}{where}"), None, orjson.dumps(text)
    source = raw
    if mapper is None:
        return value, None, source
    if mapper.layout.unwrap:
        if not isinstance(value, dict) or "input" not in value:
            return BadRow(f"line {number} is not a line written with --with-input (no 'input')"), None, source
        ident = value.get("id")
        value = value["input"]
        source = orjson.dumps(value)
        try:
            return mapper.row(value), ident, source
        except (RowError, ValueError, TypeError) as exc:
            return BadRow(f"line {number}: {exc}"), ident, source
    try:
        ident = mapper.ident(value)
    except RowError as exc:
        return BadRow(f"line {number}: {exc}"), None, source
    try:
        return mapper.row(value), ident, source
    except (RowError, ValueError, TypeError) as exc:
        return BadRow(f"line {number}: {exc}"), ident, source
