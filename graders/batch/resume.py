"""Resuming a batch run: the sidecar `OUT.meta.json`, what an earlier run already wrote, and a torn last line.

The sidecar holds a fingerprint of what decides the output (the grader, the options, the layout) and the input
file's identity (path, size, hashes of its first and last MiB). The same command with the same output file
continues after the last complete line; anything else is refused with what differs, and `--force` starts over.
Rows are resumed by index (output line k answers input row k), or by id (`--id-field`: the ids written so far are
kept in `OUT.ids`, one per output line, and only rows with other ids are graded, so the input may be reordered or
grown).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..engine import CompiledGrader
from ..response import FLAG_KEYS
from .layout import Layout
from .summary import Summary

FORMAT = 1
_EDGE = 1 << 20
# Options that change how fast a run is, never what it writes.
_RUNTIME_OPTIONS = ("batch.", "python.workers", "python.chunk_size", "models.max_concurrency", "rl.", "explain")


class ResumeError(Exception):
    """The output file holds results this run must not mix with; the message says what differs."""


def _sha(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr)).hexdigest()


def input_identity(path: str) -> dict[str, Any]:
    """Path, size and hashes of the first and last MiB: cheap for any size, and a changed file shows."""
    if path == "-":
        return {"path": "-"}
    real = os.path.realpath(path)
    size = os.path.getsize(real)
    with open(real, "rb") as handle:
        head = hashlib.sha256(handle.read(_EDGE)).hexdigest()
        handle.seek(max(0, size - _EDGE))
        tail = hashlib.sha256(handle.read(_EDGE)).hexdigest()
    return {"path": real, "size": size, "head_sha256": head, "tail_sha256": tail}


def fingerprint(compiled: CompiledGrader, layout: Layout, inputs: dict[str, Any]) -> dict[str, Any]:
    """The parts of the sidecar that must match for a run to continue an output file."""
    options = {k: v for k, v in compiled.options.flat().items() if not k.startswith(_RUNTIME_OPTIONS)}
    if layout.details:
        options["explain"] = compiled.options.explain
    return {
        "format": FORMAT,
        "grader": _sha(compiled.source),
        "name": compiled.name,
        "options": _sha(options),
        "layout": layout.to_json(),
        "inputs": inputs,
    }


@dataclass
class Resumed:
    """What an earlier run left: complete rows (by index), ids written (by id), and bytes cut from a torn line."""

    rows: int = 0
    ids: set[bytes] = field(default_factory=set)
    torn_bytes: int = 0


def meta_path(out: str) -> Path:
    return Path(out + ".meta.json")


def ids_path(out: str) -> Path:
    return Path(out + ".ids")


def _complete_lines(path: Path) -> tuple[int, int]:
    """(complete lines, byte length of them): a last line without its newline is torn, and a hole (NUL bytes:
    shards write blocks at their offsets, so a crash can leave one before the last block written) ends the
    good part, since JSON lines never hold a NUL byte."""
    lines = 0
    good = 0
    offset = 0
    with open(path, "rb") as handle:
        while True:
            data = handle.read(1 << 22)
            if not data:
                return lines, good
            hole = data.find(b"\0")
            if hole >= 0:
                data = data[:hole]
                count = data.count(b"\n")
                if count:
                    lines += count
                    good = offset + data.rfind(b"\n") + 1
                return lines, good
            count = data.count(b"\n")
            if count:
                lines += count
                good = offset + data.rfind(b"\n") + 1
            offset += len(data)


def _truncate_lines(path: Path, keep: int) -> None:
    """Cut `path` after its first `keep` lines."""
    offset = 0
    seen = 0
    with open(path, "rb") as handle:
        while seen < keep:
            data = handle.read(1 << 22)
            if not data:
                break
            count = data.count(b"\n")
            if seen + count >= keep:
                position = -1
                for _ in range(keep - seen):
                    position = data.index(b"\n", position + 1)
                offset += position + 1
                seen = keep
                break
            seen += count
            offset += len(data)
    os.truncate(path, offset)


def _differs(old: dict[str, Any], new: dict[str, Any], by_id: bool) -> str | None:
    if old.get("format") != FORMAT:
        return "it was written by another version of the batch format"
    if old.get("grader") != new["grader"] or old.get("name") != new["name"]:
        return "it was written by a different grader"
    if old.get("options") != new["options"]:
        return "it was written with different options"
    if old.get("layout") != new["layout"]:
        changed = sorted(k for k in new["layout"] if old.get("layout", {}).get(k) != new["layout"][k])
        return f"it was written with a different layout ({', '.join(changed)})"
    if not by_id and old.get("inputs") != new["inputs"]:
        return "it was written from a different input (path, size or content changed)"
    return None


def prepare(out: str, meta: dict[str, Any], *, force: bool, by_id: bool) -> Resumed:
    """Make `out` ready to append to: start over (new file, `force`), or keep what an earlier run of the same
    job wrote, cutting a torn last line. Raises `ResumeError` when the file holds something else."""
    out_path, sidecar, ids = Path(out), meta_path(out), ids_path(out)
    if meta["inputs"] and any(i.get("path") == "-" for i in meta["inputs"].values()) and out_path.exists() and out_path.stat().st_size and not force:
        raise ResumeError(f"{out} exists and the input is stdin, which cannot be resumed; use --force to start over")
    if force or not out_path.exists() or out_path.stat().st_size == 0:
        out_path.write_bytes(b"")
        if by_id:
            ids.write_bytes(b"")
        elif ids.exists():
            ids.unlink()
        write_meta(out, meta, complete=False)
        return Resumed()
    if not sidecar.exists():
        raise ResumeError(f"{out} exists but has no {sidecar.name}, so nothing says what it holds; use --force to overwrite it")
    try:
        old = orjson.loads(sidecar.read_bytes())
    except orjson.JSONDecodeError:
        raise ResumeError(f"{sidecar} is not valid JSON; use --force to start over") from None
    problem = _differs(old, meta, by_id)
    if problem:
        raise ResumeError(f"{out} cannot be continued: {problem}; use --force to start over")
    lines, good = _complete_lines(out_path)
    size = out_path.stat().st_size
    torn = size - good
    if torn:
        os.truncate(out_path, good)
    resumed = Resumed(rows=lines, torn_bytes=torn)
    if by_id:
        id_lines, id_good = _complete_lines(ids) if ids.exists() else (0, 0)
        keep = min(lines, id_lines)
        if keep < lines:
            _truncate_lines(out_path, keep)
        if ids.exists():
            os.truncate(ids, id_good)
            if keep < id_lines:
                _truncate_lines(ids, keep)
        resumed.rows = keep
        if ids.exists():
            with open(ids, "rb") as handle:
                resumed.ids = {line.rstrip(b"\n") for line in handle}
    write_meta(out, {**meta, "inputs": meta["inputs"]}, complete=False)
    return resumed


def write_meta(out: str, meta: dict[str, Any], *, complete: bool, rows: int | None = None) -> None:
    """Write the sidecar beside the output (atomically: a new file renamed over the old one)."""
    data = {**meta, "complete": complete}
    if rows is not None:
        data["rows"] = rows
    target = meta_path(out)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(temporary, target)


def read_meta(out: str) -> dict[str, Any] | None:
    try:
        return orjson.loads(meta_path(out).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def absorb(summary: Summary, out: str, layout: Layout) -> None:
    """Count the rows an earlier run wrote into this run's summary (rewards, flags, sub-grader means, usage)."""
    from array import array

    block: list[Any] = []

    def flush() -> None:
        rewards = array("d")
        flags: dict[str, int] = {}
        reasons: dict[str, dict[str, int]] = {}
        subs: dict[str, list[Any]] = {}
        usage: dict[str, dict[str, int]] = {}
        errors = 0
        for line in block:
            reward, set_flags, reason, sub_rewards, per_model = _read_line(line, layout)
            rewards.append(reward)
            if set_flags:
                errors += 1
                for flag in set_flags:
                    flags[flag] = flags.get(flag, 0) + 1
                    per = reasons.setdefault(flag, {})
                    per[reason] = per.get(reason, 0) + 1
            for key, value in sub_rewards.items():
                entry = subs.setdefault(key, [0.0, 0, [0] * 22, value, value])
                entry[0] += value
                entry[1] += 1
                entry[2][0 if value < 0 else 21 if value > 1 else 1 + min(int(value * 20), 19)] += 1
                entry[3], entry[4] = min(entry[3], value), max(entry[4], value)
            for model, counters in per_model.items():
                into = usage.setdefault(model, {})
                for k, v in counters.items():
                    into[k] = into.get(k, 0) + int(v or 0)
        summary.add(rewards.tobytes(), {"errors": errors, "flags": flags, "reasons": reasons, "subs": subs, "usage": usage})
        block.clear()

    with open(out, "rb") as handle:
        for raw in handle:
            try:
                block.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
            if len(block) >= 10000:
                flush()
    if block:
        flush()
    summary.resumed_rows = summary.rows


def _read_line(line: Any, layout: Layout) -> tuple[float, list[str], str, dict[str, float], dict[str, Any]]:
    if layout.output == "compact":
        flags = line.get("flags") or []
        return float(line.get("reward", 0.0)), flags, ", ".join(flags), line.get("sub_rewards") or {}, {}
    if layout.output == "with_input":
        line = line.get("response") or {}
    errors = (line.get("metadata") or {}).get("errors") or {}
    flags = [f for f in FLAG_KEYS if errors.get(f) is True]
    reason = ""
    for key, value in errors.items():
        if isinstance(value, str):
            reason = " ".join(value.split())[:200]
            break
    return float(line.get("reward", 0.0)), flags, reason or ", ".join(flags), line.get("sub_rewards") or {}, line.get("model_grader_token_usage_per_model") or {}
