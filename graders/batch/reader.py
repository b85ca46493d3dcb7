"""The parent's only per-input work: cut the input into blocks of whole lines and number them.

A block is `(first_row, first_line, bytes, rows, end)`: `rows` counts its non-blank lines (row k of the input is
its k-th non-blank line, and output line k answers it), `end` the input offset just past it (for progress).
Lines are never decoded here, except to read an id when resuming by id or joining RFT rows by id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from .layout import get_path
from .shard import SKIPPED

Block = tuple[int, int, bytes, int, int]
_WS_LINE_STARTS = (b"\n\n", b"\n ", b"\n\t", b"\n\r", b"\n\x0b", b"\n\x0c")


def count_rows(block: bytes) -> int:
    """Non-blank lines in a block of whole lines (a fast path when no line can be blank)."""
    lines = block.count(b"\n")
    if block[:1] == b"{" and block.count(b"\n{") == lines - (block[-1:] == b"\n"):  # every line an object
        return lines
    if block[:1] in b" \t\r\n\x0b\x0c" or any(s in block for s in _WS_LINE_STARTS):
        return sum(1 for line in block.split(b"\n")[:lines] if line and not line.isspace())
    return lines


def blocks(handle: IO[bytes], block_bytes: int, skip_rows: int = 0) -> Iterator[Block]:
    """Blocks of about `block_bytes` of whole lines; the first `skip_rows` rows are passed over (resume)."""
    row = 0
    line = 1
    rest = b""
    consumed = 0
    while True:
        data = handle.read(block_bytes)
        if not data:
            if rest:  # a last line without its newline
                consumed += len(rest)
                data, rest = rest + b"\n", b""
            else:
                return
        else:
            consumed += len(data)
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            data, rest = data[: cut + 1], data[cut + 1 :]
        n = count_rows(data)
        lines = data.count(b"\n")
        if row + n <= skip_rows:
            row += n
            line += lines
            continue
        if row < skip_rows:  # the block where the skipped rows end: drop its first rows
            parts = data.split(b"\n")
            kept = 0
            for index, part in enumerate(parts):
                if part and not part.isspace():
                    if row + kept == skip_rows:
                        break
                    kept += 1
            head = b"\n".join(parts[:index]) + b"\n"
            data = data[len(head):]
            line += index
            row = skip_rows
            n = count_rows(data)
            lines = data.count(b"\n")
        yield row, line, data, n, consumed - len(rest)
        row += n
        line += lines


def filter_ids(block: Block, id_path: tuple[str, ...], done: set[bytes], rft: bool = False) -> Block:
    """Mark the lines whose id was written by an earlier run (resume by id); line and row numbers stay right."""
    first_row, first_line, data, n, end = block
    parts = data.split(b"\n")
    for index, part in enumerate(parts):
        if not part or part.isspace():
            continue
        try:
            value: Any = orjson.loads(part)
            if rft and isinstance(value, list) and value:
                value = value[0]
            ident = orjson.dumps(get_path(value, id_path))
        except (orjson.JSONDecodeError, TypeError):
            continue
        if ident in done:
            parts[index] = SKIPPED
    return first_row, first_line, b"\n".join(parts), n, end


def rft_pairs(train: IO[bytes], samples: IO[bytes], block_bytes: int, id_path: tuple[str, ...] | None) -> Iterator[bytes]:
    """Training rows joined with their samples entries as `[row, entry]` lines, by index or by id.

    By id, the samples file is read whole into a map (id → line); a row without an entry gets `null`, which the
    layout reports as a bad row.
    """
    by_id: dict[bytes, bytes] | None = None
    if id_path is not None:
        by_id = {}
        for raw in samples:
            if raw.strip():
                try:
                    by_id[orjson.dumps(get_path(orjson.loads(raw), id_path))] = raw.strip()
                except (orjson.JSONDecodeError, TypeError):
                    continue
    out: list[bytes] = []
    size = 0
    for raw in train:
        if not raw.strip():
            out.append(b"")
            continue
        row = raw.strip()
        if by_id is None:
            entry = b""
            while not entry:
                entry = samples.readline()
                if not entry:
                    break
                entry = entry.strip()
            entry = entry or b"null"
        else:
            try:
                entry = by_id.get(orjson.dumps(get_path(orjson.loads(row), id_path)), b"null")  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, TypeError):
                entry = b"null"
        out.append(b"[" + row + b"," + entry + b"]")
        size += len(out[-1])
        if size >= block_bytes:
            yield b"\n".join(out) + b"\n"
            out, size = [], 0
    if out:
        yield b"\n".join(out) + b"\n"


def parquet_lines(path: str, batch_rows: int = 4096) -> Iterator[bytes]:
    """A Parquet file as JSONL: one JSON object per row, in row order (values orjson cannot write, such as
    decimals, as their text). Needs pyarrow (`pip install pyarrow`; `graders[ray]` brings it)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path!r} is Parquet, and reading Parquet needs pyarrow: pip install pyarrow") from None
    dumps, option = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield b"".join([dumps(row, default=str, option=option) + b"\n" for row in batch.to_pylist()])


def is_parquet(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


class JoinedInput:
    """A file-like view of chunks of JSONL bytes (`rft_pairs`, `parquet_lines`), so they go through `blocks` like
    any input."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def __iter__(self) -> Iterator[bytes]:
        """Line by line (`rft_pairs` reads training rows this way)."""
        while True:
            cut = self._buffer.find(b"\n")
            while cut < 0:
                chunk = next(self._chunks, None)
                if chunk is None:
                    if self._buffer:
                        line, self._buffer = self._buffer, b""
                        yield line
                    return
                self._buffer += chunk
                cut = self._buffer.find(b"\n")
            line, self._buffer = self._buffer[: cut + 1], self._buffer[cut + 1 :]
            yield line

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
