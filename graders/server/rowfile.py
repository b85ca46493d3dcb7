"""A JSONL file named on `graders ui`'s command line, served to the playground a page of rows at a time.

The page never holds the file: it asks for a range of rows (filtered by a flag or a reward bin, sorted by reward or
by how much a re-grade changed it) and gets only those. Opening reads one line, to tell what the file holds:

- `wire`: one response per line (`graders batch`'s default output, with `details` under `--details`);
- `with_input`: `{"row", "id", "input", "response"}` lines (`graders batch --with-input`);
- `compact`: `{"row", "reward", "flags"?, "sub_rewards"?}` lines (`graders batch --compact`);
- `rows`: input rows (`{"model_sample" | "sample", "item"}` or bare strings) without responses.

A `graders batch` output's sidecar (`OUT.meta.json`) names its output shape and input layout; with it, the inputs of
a `--with-input` output are mapped to rows exactly as `graders rescore` maps them (`--sample-field`, RFT rows, …).

The index of line offsets is built on first use (numpy over 4 MiB blocks, a fraction of a second per 100 MB); every row's
reward and flags are read when a summary, a filter or a sort first needs them; a page reads only its own lines.
`regrade` grades every input with another grader (the `B` column), so rows can be compared with what was recorded.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson

from ..batch.layout import Layout, RowError, RowMapper
from ..batch.resume import read_meta
from ..engine import CompiledGrader
from ..errors import BadRow
from ..response import DETAILS_KEY, FLAG_KEYS

KINDS = ("wire", "with_input", "compact", "rows")
BLOCK = 4 * 1024 * 1024
BINS = 20
MAX_PAGE = 200
SORTS = ("row", "reward", "-reward", "-change")
UNREADABLE = "unreadable_line"
"""The pseudo-flag of a line that is not JSON or not a response: such a row shows its problem, never a reward."""
_FLAG_BIT = {flag: 1 << i for i, flag in enumerate((*FLAG_KEYS, UNREADABLE))}
SNIPPET = 160


class RowFileError(ValueError):
    """A request this file cannot answer (no such row, nothing to re-grade); the message says why."""


def _kind_of(first: Any) -> str:
    if isinstance(first, dict):
        if "response" in first and "input" in first:
            return "with_input"
        if "reward" in first and "metadata" in first:
            return "wire"
        if "reward" in first and "row" in first:
            return "compact"
    return "rows"


def _mask(flags: Any) -> int:
    mask = 0
    for flag in flags:
        mask |= _FLAG_BIT.get(flag, 0)
    return mask


def _flags_of(mask: int) -> list[str]:
    return [flag for flag, bit in _FLAG_BIT.items() if mask & bit]


def _snippet(value: Any) -> str | None:
    """A short text to recognise a row by: its sample text (or the structured sample as JSON)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        sample = value.get("model_sample", value.get("sample"))
        if sample is None:
            return None
        text = sample if isinstance(sample, str) else orjson.dumps(sample).decode()
    else:
        return None
    return text if len(text) <= SNIPPET else text[:SNIPPET] + "…"


class RowFile:
    """One opened file: its kind, a lazily built line index, lazily read rewards and flags, an optional re-grade."""

    def __init__(self, path: str, ident: str) -> None:
        self.path = os.path.realpath(path)
        self.ident = ident
        self.name = os.path.basename(path)
        with open(self.path, "rb") as handle:
            first = b""
            for line in handle:
                if line.strip():
                    first = line
                    break
        meta = read_meta(self.path) or {}
        layout = Layout.from_json(meta["layout"]) if isinstance(meta.get("layout"), dict) else None
        try:
            self.kind = layout.output if layout is not None else _kind_of(orjson.loads(first)) if first else "rows"
        except orjson.JSONDecodeError:
            raise ValueError(f"{path!r}: the first line is not JSON, so it is neither a batch output nor rows") from None
        except TypeError:
            raise ValueError(f"{path}.meta.json has a layout this version cannot read") from None
        self._mapper = RowMapper(layout if layout is not None else Layout())
        self._index_lock = threading.Lock()  # separate: a page never waits for the whole-file pass
        self._lock = threading.Lock()
        self._starts: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        self._rewards: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        self._regrade: tuple[str, np.ndarray, np.ndarray] | None = None
        self._selection: tuple[Any, np.ndarray] | None = None

    # -- the index --------------------------------------------------------------------------------------------

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) byte offsets of every line that is not blank, end excluding the newline.

        A line is blank when it holds only whitespace (what `bytes.strip` removes); per block, `logical_or.reduceat`
        over the visible bytes tells it for every line at once, the line left open at a block's end carried over.
        """
        with self._index_lock:
            if self._starts is None or self._ends is None:
                newlines: list[np.ndarray] = []
                visible: list[np.ndarray] = []
                size, open_line = 0, False
                with open(self.path, "rb") as handle:
                    while block := handle.read(BLOCK):
                        data = np.frombuffer(block, dtype=np.uint8)
                        shown = (data > 32) | (data < 9) | ((data > 13) & (data < 32))
                        at = np.flatnonzero(data == 10)
                        cuts = np.concatenate(([0], at + 1))
                        any_shown = np.logical_or.reduceat(shown, cuts[cuts < len(data)])
                        if len(at):
                            closed = any_shown[: len(at)].copy()
                            closed[0] |= open_line
                            open_line = bool(any_shown[len(at)]) if len(any_shown) > len(at) else False
                            newlines.append(at + size)
                            visible.append(closed)
                        else:
                            open_line = open_line or bool(any_shown[0])
                        size += len(block)
                ends = np.concatenate([*newlines, [size]]).astype(np.int64)
                keep = np.concatenate([*visible, [open_line]]).astype(bool)
                starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
                self._starts, self._ends = starts[keep], ends[keep]
            return self._starts, self._ends

    @property
    def rows(self) -> int:
        return len(self._index()[0])

    def _lines(self, indices: Any) -> Iterator[bytes]:
        starts, ends = self._index()
        with open(self.path, "rb") as handle:
            fd = handle.fileno()
            for i in indices:
                yield os.pread(fd, int(ends[i] - starts[i]), int(starts[i]))

    def _all_lines(self) -> Iterator[bytes]:
        """Every non-blank line, read sequentially (the whole-file passes)."""
        with open(self.path, "rb") as handle:
            for line in handle:
                if line.strip():
                    yield line

    # -- what a line says -------------------------------------------------------------------------------------

    def _response(self, value: Any) -> Any:
        return value.get("response") if self.kind == "with_input" and isinstance(value, dict) else value

    def _score(self, raw: bytes) -> tuple[float, int]:
        """(reward, flag mask) of one recorded line; NaN and the unreadable bit for a line that is not a response."""
        try:
            value = self._response(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return math.nan, _FLAG_BIT[UNREADABLE]
        if not isinstance(value, dict) or not isinstance(value.get("reward"), (int, float)):
            return math.nan, _FLAG_BIT[UNREADABLE]
        if self.kind == "compact":
            flags = value.get("flags") or []
        else:
            errors = (value.get("metadata") or {}).get("errors") or {}
            flags = [flag for flag in FLAG_KEYS if errors.get(flag) is True]
        return float(value["reward"]), _mask(flags)

    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's recorded reward and flags, read once (about 1 s per 100 k wire lines)."""
        if self.kind == "rows":
            raise RowFileError(f"{self.name} holds rows without responses: grade it with the editor's grader first")
        self._index()
        with self._lock:
            if self._rewards is None or self._masks is None:
                count = len(self._starts) if self._starts is not None else 0
                rewards = np.empty(count, dtype=np.float64)
                masks = np.empty(count, dtype=np.uint32)
                for i, raw in enumerate(self._all_lines()):
                    if i >= count:
                        break
                    rewards[i], masks[i] = self._score(raw)
                self._rewards, self._masks = rewards, masks
            return self._rewards, self._masks

    def engine_row(self, value: Any, number: int) -> Any:
        """The row a line's input is graded as (mapped by the output's recorded layout), or a `BadRow` naming the line."""
        if self.kind == "with_input":
            if not isinstance(value, dict) or "input" not in value:
                return BadRow(f"line {number} has no 'input'")
            value = value["input"]
        try:
            return self._mapper.row(value)
        except (RowError, ValueError, TypeError) as exc:
            return BadRow(f"line {number}: {exc}")

    def _inputs(self) -> Iterator[Any]:
        for number, raw in enumerate(self._all_lines(), 1):
            try:
                yield self.engine_row(orjson.loads(raw), number)
            except orjson.JSONDecodeError as exc:
                yield BadRow(f"line {number} is not valid JSON: {exc}")

    @property
    def has_inputs(self) -> bool:
        return self.kind in ("with_input", "rows")

    @property
    def recorded(self) -> bool:
        return self.kind != "rows"

    # -- re-grading -------------------------------------------------------------------------------------------

    def regrade(self, compiled: CompiledGrader, key: str, cancelled: Callable[[], bool]) -> None:
        """Grade every input with `compiled` (column B), in chunks, stopping early when `cancelled()` says so."""
        if not self.has_inputs:
            raise RowFileError(
                f"{self.name} has responses but not the rows they answer: write it with `graders batch --with-input` to re-grade it"
            )
        count = self.rows
        rewards = np.full(count, np.nan, dtype=np.float64)
        masks = np.zeros(count, dtype=np.uint32)
        for i, response in enumerate(compiled.iter_run(self._inputs(), chunk_size=512)):
            if i >= count:
                break
            if i % 512 == 0 and cancelled():
                raise TimeoutError
            rewards[i] = response.reward
            errors = response.outcome.errors
            masks[i] = _mask(flag for flag in FLAG_KEYS if errors and errors.get(flag)) if errors else 0
        with self._lock:
            self._regrade = (key, rewards, masks)
            self._selection = None

    def regraded(self, key: str | None) -> bool:
        """Whether column B holds the grade of `key` (any re-grade when `key` is None)."""
        return self._regrade is not None and (key is None or self._regrade[0] == key)

    # -- queries ----------------------------------------------------------------------------------------------

    def _columns(self, use_b: bool) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(A rewards, A masks, B rewards, B masks), B only when asked for and present."""
        a_rewards, a_masks = self._scores() if self.recorded else (None, None)
        if use_b and self._regrade is not None:
            return a_rewards, a_masks, self._regrade[1], self._regrade[2]
        return a_rewards, a_masks, None, None

    def _select(self, flag: str | None, bin_index: int | None, sort: str, changed: bool, use_b: bool) -> np.ndarray:
        query = (flag, bin_index, sort, changed, use_b, self._regrade[0] if self._regrade else None)
        with self._lock:
            if self._selection is not None and self._selection[0] == query:
                return self._selection[1]
        a_rewards, a_masks, b_rewards, b_masks = self._columns(use_b)
        rewards = b_rewards if b_rewards is not None else a_rewards
        masks = b_masks if b_masks is not None else a_masks
        if rewards is None or masks is None:
            raise RowFileError(f"{self.name} holds rows without responses: grade it with the editor's grader first")
        keep = np.ones(len(rewards), dtype=bool)
        if flag == "any":
            keep &= masks != 0
        elif flag == "none":
            keep &= masks == 0
        elif flag is not None:
            if flag not in _FLAG_BIT:
                raise RowFileError(f"unknown flag {flag!r}; expected 'any', 'none' or one of {', '.join(_FLAG_BIT)}")
            keep &= (masks & _FLAG_BIT[flag]) != 0
        if bin_index is not None:
            keep &= histogram_bins(rewards) == bin_index
        delta = None
        if a_rewards is not None and b_rewards is not None and a_masks is not None and b_masks is not None:
            delta = np.nan_to_num(b_rewards, nan=0.0) - np.nan_to_num(a_rewards, nan=0.0)
            if changed:
                keep &= (np.abs(delta) > 1e-12) | (a_masks != b_masks)
        chosen = np.flatnonzero(keep)
        if sort in ("reward", "-reward"):
            values = np.nan_to_num(rewards[chosen], nan=-np.inf)
            order = np.argsort(values if sort == "reward" else -values, kind="stable")
            chosen = chosen[order]
        elif sort == "-change":
            if delta is None:
                raise RowFileError("sorting by change needs a re-grade to compare with")
            chosen = chosen[np.argsort(-np.abs(delta[chosen]), kind="stable")]
        elif sort != "row":
            raise RowFileError(f"unknown sort {sort!r}; expected 'row', 'reward', '-reward' or '-change'")
        with self._lock:
            self._selection = (query, chosen)
        return chosen

    def page(
        self,
        start: int,
        count: int,
        *,
        flag: str | None = None,
        bin_index: int | None = None,
        sort: str = "row",
        changed: bool = False,
        use_b: bool = False,
    ) -> dict[str, Any]:
        """Rows `start`…`start + count` of the selection, each as the table shows it."""
        count = max(0, min(count, MAX_PAGE))
        plain = flag is None and bin_index is None and sort == "row" and not changed and (not use_b or self._regrade is None)
        if plain:
            total = self.rows
            indices = np.arange(min(start, total), min(start + count, total))
        else:
            chosen = self._select(flag, bin_index, sort, changed, use_b)
            total = len(chosen)
            indices = chosen[start : start + count]
        b = self._regrade if use_b else None
        rows = []
        for i, raw in zip(indices, self._lines(indices)):
            entry = self._entry(int(i), raw)
            if b is not None:
                entry["reward_b"] = None if math.isnan(b[1][i]) else float(b[1][i])
                entry["flags_b"] = _flags_of(int(b[2][i]))
            rows.append(entry)
        return {"file": self.ident, "total": total, "rows_in_file": self.rows, "start": start, "rows": rows}

    def _entry(self, index: int, raw: bytes) -> dict[str, Any]:
        entry: dict[str, Any] = {"row": index}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return {**entry, "reward": None, "flags": [UNREADABLE], "error": f"line {index + 1} is not valid JSON: {exc}"}
        if self.has_inputs:
            row = self.engine_row(value, index + 1)
            entry["sample"] = None if isinstance(row, BadRow) else _snippet(row)
        if self.kind == "with_input" and isinstance(value, dict):
            entry["id"] = value.get("id")
        if not self.recorded:
            return entry
        response = self._response(value)
        reward, mask = self._score(raw)
        entry["reward"] = None if math.isnan(reward) else reward
        entry["flags"] = _flags_of(mask)
        if isinstance(response, dict):
            entry["sub_rewards"] = response.get("sub_rewards") or {}
            entry["error"] = _reason(response)
        return entry

    def line(self, index: int) -> dict[str, Any]:
        """Row `index` whole: the parsed line, and its re-grade's reward and flags when there is one."""
        if not 0 <= index < self.rows:
            raise RowFileError(f"{self.name} has no row {index} (it has {self.rows})")
        raw = next(self._lines([index]))
        out: dict[str, Any] = {"file": self.ident, "row": index, "kind": self.kind}
        try:
            out["line"] = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out["problem"] = f"line {index + 1} is not valid JSON: {exc}"
            out["text"] = raw.decode("utf-8", "replace")
            return out
        if self.has_inputs:
            row = self.engine_row(out["line"], index + 1)
            if isinstance(row, BadRow):
                out["problem"] = row.reason
            else:
                out["input"] = {"model_sample": row} if isinstance(row, str) else row
        if self._regrade is not None:
            out["reward_b"] = None if math.isnan(self._regrade[1][index]) else float(self._regrade[1][index])
            out["flags_b"] = _flags_of(int(self._regrade[2][index]))
        return out

    def summary(self, *, use_b: bool = False) -> dict[str, Any]:
        """Counts, reward statistics, a histogram and flag counts of column A (recorded) and of B (re-graded)."""
        out: dict[str, Any] = {"file": self.ident, "name": self.name, "kind": self.kind, "rows": self.rows}
        a_rewards, a_masks, b_rewards, b_masks = self._columns(use_b)
        if a_rewards is not None and a_masks is not None:
            out["a"] = column_summary(a_rewards, a_masks)
        if b_rewards is not None and b_masks is not None:
            out["b"] = column_summary(b_rewards, b_masks)
            if a_rewards is not None and a_masks is not None:
                delta = np.nan_to_num(b_rewards, nan=0.0) - np.nan_to_num(a_rewards, nan=0.0)
                changed = (np.abs(delta) > 1e-12) | (a_masks != b_masks)
                out["changed"] = int(changed.sum())
                out["max_change"] = float(np.abs(delta).max()) if len(delta) else 0.0
        return out

    def describe(self) -> dict[str, Any]:
        """What the page lists before anything is read."""
        return {"file": self.ident, "name": self.name, "kind": self.kind, "bytes": os.path.getsize(self.path),
                "has_inputs": self.has_inputs, "recorded": self.recorded}


def _reason(response: dict[str, Any]) -> str | None:
    """The first text explaining a set flag, as one short line."""
    errors = (response.get("metadata") or {}).get("errors") or {}
    for flag in FLAG_KEYS:
        if errors.get(flag) is True:
            text = errors.get(DETAILS_KEY.get(flag, "")) or (response.get("details") or {}).get("error")
            return " ".join(str(text).split())[:300] if text else flag
    return None


def _range(finite: np.ndarray) -> tuple[float, float]:
    """The histogram's range: [0, 1] widened to the rewards' own (python rewards are not clamped, §8.2)."""
    if not finite.size:
        return 0.0, 1.0
    return min(0.0, float(finite.min())), max(1.0, float(finite.max()))


def histogram_bins(rewards: np.ndarray) -> np.ndarray:
    """Each reward's histogram bin (0…BINS-1, the top edge in the last bin), -1 for a row without a reward."""
    finite = np.isfinite(rewards)
    low, high = _range(rewards[finite])
    bins = np.floor((np.nan_to_num(rewards, nan=low) - low) / (high - low) * BINS).astype(np.int64)
    return np.where(finite, np.clip(bins, 0, BINS - 1), -1)


def column_summary(rewards: np.ndarray, masks: np.ndarray) -> dict[str, Any]:
    """Statistics of one column: mean, min, max, errors, per-flag counts and a 20-bin histogram over [0, 1] widened
    to the rewards' range."""
    finite = rewards[np.isfinite(rewards)]
    low, high = _range(finite)
    counts = np.bincount(histogram_bins(finite), minlength=BINS)
    flags = {flag: int(((masks & bit) != 0).sum()) for flag, bit in _FLAG_BIT.items()}
    return {
        "mean": float(finite.mean()) if finite.size else None,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "errors": int((masks != 0).sum()),
        "flags": {k: v for k, v in flags.items() if v},
        "histogram": {"low": low, "high": high, "counts": [int(c) for c in counts]},
    }
