"""The numbers of a batch run: reward statistics over every row (one float per row is kept, so they are exact),
counts per error flag with their most common reasons (a bounded counter), sub-grader means, token usage per model,
wall time and rows/s."""

from __future__ import annotations

import math
import time
from array import array
from collections import Counter
from typing import Any

from ..response import FLAG_KEYS

MAX_REASONS = 1000
"""Distinct reasons kept per flag; past this the rarest half is dropped (counts of kept reasons stay exact
unless a reason was dropped and came back)."""
TOP_REASONS = 5


def reward_stats(rewards: array) -> dict[str, float | None]:
    """mean / median / min / max / sample stdev of the rewards; None for each when there are none."""
    n = len(rewards)
    if not n:
        return {"mean": None, "median": None, "min": None, "max": None, "stdev": None}
    ordered = sorted(rewards)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    mean = math.fsum(rewards) / n
    stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in rewards) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "median": median, "min": ordered[0], "max": ordered[-1], "stdev": stdev}


class Summary:
    """Accumulates block stats in input order; `to_dict()` is what `--summary F` writes."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.rewards = array("d")
        self.errors = 0
        self.flags: Counter[str] = Counter()
        self.reasons: dict[str, Counter[str]] = {}
        self.subs: dict[str, list[Any]] = {}
        self.usage: dict[str, dict[str, int]] = {}
        self.resumed_rows = 0
        self.interrupted = False
        self.wall_time: float | None = None

    @property
    def rows(self) -> int:
        return len(self.rewards)

    def add(self, rewards: bytes, stats: dict[str, Any]) -> None:
        self.rewards.frombytes(rewards)
        self.errors += stats["errors"]
        if stats["flags"]:
            self.flags.update(stats["flags"])
            for flag, reasons in stats["reasons"].items():
                kept = self.reasons.setdefault(flag, Counter())
                kept.update(reasons)
                if len(kept) > MAX_REASONS:
                    self.reasons[flag] = Counter(dict(kept.most_common(MAX_REASONS // 2)))
        for key, (total, count, bins, low, high) in stats["subs"].items():
            entry = self.subs.get(key)
            if entry is None:
                self.subs[key] = [total, count, list(bins), low, high]
            else:
                entry[0] += total
                entry[1] += count
                entry[2] = [a + b for a, b in zip(entry[2], bins)]
                entry[3] = min(entry[3], low)
                entry[4] = max(entry[4], high)
        for model, counters in stats["usage"].items():
            into = self.usage.setdefault(model, {})
            for k, v in counters.items():
                into[k] = into.get(k, 0) + v

    def finish(self, *, interrupted: bool = False) -> Summary:
        self.interrupted = interrupted
        self.wall_time = time.monotonic() - self.started
        return self

    def to_dict(self) -> dict[str, Any]:
        wall = self.wall_time if self.wall_time is not None else time.monotonic() - self.started
        graded = self.rows - self.resumed_rows
        return {
            "rows": self.rows,
            "resumed_rows": self.resumed_rows,
            "errors": self.errors,
            "reward": reward_stats(self.rewards),
            "flags": {
                flag: {"count": self.flags[flag], "top_reasons": [[r, c] for r, c in self.reasons.get(flag, Counter()).most_common(TOP_REASONS)]}
                for flag in FLAG_KEYS
                if self.flags.get(flag)
            },
            "sub_graders": {
                key: {"mean": total / count if count else None, "count": count, "min": low, "max": high, "histogram": bins}
                for key, (total, count, bins, low, high) in self.subs.items()
            },
            "token_usage": self.usage,
            "wall_time_s": wall,
            "rows_per_s": graded / wall if wall > 0 else None,
            "interrupted": self.interrupted,
        }

    def format(self) -> str:
        """The summary for a person (stderr)."""
        d = self.to_dict()
        r = d["reward"]
        lines = [f"graders: {d['rows']} rows, {d['errors']} with errors" + (f" ({d['resumed_rows']} from an earlier run)" if d["resumed_rows"] else "")
                 + (" [interrupted]" if d["interrupted"] else "")]
        if r["mean"] is not None:
            lines.append(f"  reward: mean {r['mean']:.6f}, median {r['median']:.6f}, min {r['min']:.6f}, max {r['max']:.6f}, stdev {r['stdev']:.6f}")
        for flag, info in d["flags"].items():
            lines.append(f"  {flag}: {info['count']}")
            for reason, count in info["top_reasons"][:3]:
                lines.append(f"    {count} × {reason}")
        for key, info in d["sub_graders"].items():
            lines.append(f"  sub-grader {key}: mean {info['mean']:.6f}")
        for model, usage in d["token_usage"].items():
            lines.append(f"  tokens {model}: " + ", ".join(f"{k} {v}" for k, v in usage.items()))
        rate = f", {d['rows_per_s']:.0f} rows/s" if d["rows_per_s"] else ""
        lines.append(f"  wall time {d['wall_time_s']:.2f} s{rate}")
        return "\n".join(lines)
