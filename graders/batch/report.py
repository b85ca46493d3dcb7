"""`--report report.html`: one self-contained page (inline CSS, SVG and a few lines of JS; nothing fetched).

It shows the summary, a histogram of every row's reward, each sub-grader's distribution, the error counts with
their most common reasons, and the worst and the errored rows with their input, rendered templates and details.
"""

from __future__ import annotations

import heapq
import html
import json
from typing import Any

import numpy as np

from .shard import REPORT_ROWS
from .summary import Summary

HIST_BINS = 20


class ReportRows:
    """The worst rows (lowest reward) and the first errored rows over the whole run, from each block's share."""

    def __init__(self, limit: int = REPORT_ROWS) -> None:
        self.limit = limit
        self._worst: list[tuple[float, int, dict[str, Any]]] = []  # a max-heap on (reward, row) via negation
        self.errored: list[dict[str, Any]] = []

    def add(self, stats: dict[str, Any]) -> None:
        for entry in stats.get("worst", ()):
            key = (-float(entry["reward"]), -int(entry["row"]), entry)
            if len(self._worst) < self.limit:
                heapq.heappush(self._worst, key)
            elif key[:2] > self._worst[0][:2]:
                heapq.heapreplace(self._worst, key)
        room = self.limit - len(self.errored)
        if room > 0:
            self.errored.extend(stats.get("errored", ())[:room])

    @property
    def worst(self) -> list[dict[str, Any]]:
        return [entry for _, _, entry in sorted(self._worst, key=lambda k: (-k[0], -k[1]))]


def histogram(values: Any, bins: int = HIST_BINS) -> tuple[list[int], float, float]:
    """(counts, low, high) of the values over their own range (a single value gets a unit-wide range)."""
    array = np.asarray(values, dtype=float)
    if not array.size:
        return [0] * bins, 0.0, 1.0
    low, high = float(array.min()), float(array.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts, _ = np.histogram(array, bins=bins, range=(low, high))
    return counts.tolist(), low, high


def _svg_bars(counts: list[int], low: float, high: float, *, label: str, width: int = 640, height: int = 180) -> str:
    peak = max(counts) or 1
    bar = width / len(counts)
    step = (high - low) / len(counts)
    rects = []
    for i, count in enumerate(counts):
        h = (height - 30) * count / peak
        lo = low + i * step
        rects.append(
            f'<rect class="bar" x="{i * bar + 1:.1f}" y="{height - 20 - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
            f'data-count="{count}"><title>[{lo:.4g}, {lo + step:.4g}): {count}</title></rect>'
        )
    axis = (f'<text x="0" y="{height - 4}">{low:.4g}</text>'
            f'<text x="{width}" y="{height - 4}" text-anchor="end">{high:.4g}</text>')
    return (f'<svg class="histogram" role="img" aria-label="{html.escape(label)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}">{"".join(rects)}{axis}</svg>')


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _row_card(entry: dict[str, Any], kind: str) -> str:
    flags = " ".join(f'<span class="flag">{html.escape(f)}</span>' for f in entry.get("flags") or [])
    details = entry.get("details") or {}
    rendered = {k: v for k, v in details.items() if k in ("input", "reference", "rendered", "messages", "sub_graders")}
    rest = {k: v for k, v in details.items() if k not in rendered}
    subs = ", ".join(f"{html.escape(k)} {_fmt(v)}" for k, v in (entry.get("sub_rewards") or {}).items())
    return (
        f'<details class="row {kind}" data-row="{entry["row"]}"><summary>row {entry["row"]} (line {entry.get("line")}) '
        f'reward <b>{_fmt(entry["reward"])}</b> {flags}'
        + (f' <span class="reason">{html.escape(entry.get("reason") or "")}</span>' if entry.get("reason") else "")
        + "</summary>"
        + (f"<p>sub-rewards: {subs}</p>" if subs else "")
        + "<h4>input</h4><pre>" + html.escape(json.dumps(entry.get("input"), indent=2, ensure_ascii=False, default=str)) + "</pre>"
        + ("<h4>rendered templates</h4><pre>" + html.escape(json.dumps(rendered, indent=2, ensure_ascii=False, default=str)) + "</pre>" if rendered else "")
        + ("<h4>details</h4><pre>" + html.escape(json.dumps(rest, indent=2, ensure_ascii=False, default=str)) + "</pre>" if rest else "")
        + "</details>"
    )


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#1d1d1f;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{fill:#3b7dd8}.bar:hover{fill:#e8590c}svg text{font-size:11px;fill:#555}
.flag{background:#fde2e1;color:#a4161a;border-radius:3px;padding:0 .35em;font-size:.85em;margin-left:.3em}
.reason{color:#666}details.row{border:1px solid #e5e5e5;border-radius:4px;margin:.4em 0;padding:.3em .6em}
details.row summary{cursor:pointer}pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:24em;white-space:pre-wrap}
.sub{display:inline-block;margin:0 1.5em 1em 0;vertical-align:top}.muted{color:#777}
#filter{margin:.5em 0;padding:.3em;width:20em}
"""

_JS = """
(function(){
  var box=document.getElementById('filter');
  if(!box){return;}
  box.addEventListener('input',function(){
    var q=box.value.toLowerCase();
    document.querySelectorAll('details.row').forEach(function(d){
      d.style.display=d.textContent.toLowerCase().indexOf(q)>=0?'':'none';
    });
  });
  document.getElementById('expand').addEventListener('click',function(){
    document.querySelectorAll('details.row').forEach(function(d){d.open=true;});
  });
})();
"""


def render_report(summary: Summary, rows: ReportRows, *, compiled_name: str, grader: Any) -> str:
    """The report page as one HTML string."""
    data = summary.to_dict()
    reward = data["reward"]
    counts, low, high = histogram(summary.rewards)
    stat_rows = "".join(
        f'<tr><th>{k}</th><td class="num">{_fmt(v)}</td></tr>'
        for k, v in [("rows", data["rows"]), ("rows with errors", data["errors"]), ("mean", reward["mean"]),
                     ("median", reward["median"]), ("min", reward["min"]), ("max", reward["max"]),
                     ("stdev", reward["stdev"]), ("wall time (s)", data["wall_time_s"]), ("rows/s", data["rows_per_s"])]
    )
    flag_rows = "".join(
        f'<tr><td>{html.escape(flag)}</td><td class="num">{info["count"]}</td><td>'
        + "<br>".join(f"{c} × {html.escape(r)}" for r, c in info["top_reasons"])
        + "</td></tr>"
        for flag, info in data["flags"].items()
    ) or '<tr><td colspan="3" class="muted">no errors</td></tr>'
    subs = ""
    for key, info in data["sub_graders"].items():
        bins = info["histogram"]
        subs += (f'<div class="sub"><h3>{html.escape(key)}</h3><p>mean {_fmt(info["mean"])} · min {_fmt(info["min"])} · '
                 f'max {_fmt(info["max"])}' + (f" · {bins[0]} below 0" if bins[0] else "") + (f" · {bins[-1]} above 1" if bins[-1] else "")
                 + "</p>" + _svg_bars(bins[1:-1], 0.0, 1.0, label=f"{key} distribution", width=300, height=120) + "</div>")
    usage = "".join(
        f"<tr><td>{html.escape(model)}</td>" + "".join(f'<td class="num">{v}</td>' for v in u.values()) + "</tr>"
        for model, u in data["token_usage"].items()
    )
    worst = "".join(_row_card(e, "worst") for e in rows.worst) or '<p class="muted">no rows</p>'
    errored = "".join(_row_card(e, "errored") for e in rows.errored) or '<p class="muted">no errored rows</p>'
    grader_json = html.escape(json.dumps(grader, indent=2, ensure_ascii=False, default=str))
    title = f"graders batch report: {compiled_name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{'<p class="flag">interrupted: the summary covers the rows done</p>' if data["interrupted"] else ""}
<h2 id="summary">Summary</h2>
<table id="stats">{stat_rows}</table>
<h2 id="rewards">Reward distribution</h2>
{_svg_bars(counts, low, high, label="reward histogram")}
{('<h2 id="sub-graders">Sub-graders</h2>' + subs) if subs else ""}
<h2 id="errors">Errors</h2>
<table id="error-counts"><tr><th>flag</th><th>rows</th><th>most common reasons</th></tr>{flag_rows}</table>
{('<h2>Token usage</h2><table><tr><th>model</th><th>prompt</th><th>total</th><th>completion</th><th>cached</th></tr>' + usage + "</table>") if usage else ""}
<h2 id="rows">Rows</h2>
<input id="filter" type="search" placeholder="filter rows by any text"> <button id="expand" type="button">expand all</button>
<h3 id="worst">The {len(rows.worst)} worst rows</h3>
<div id="worst-rows">{worst}</div>
<h3 id="errored">Errored rows (first {len(rows.errored)})</h3>
<div id="errored-rows">{errored}</div>
<h2>Grader</h2><details><summary>grader JSON</summary><pre>{grader_json}</pre></details>
<script>{_JS}</script>
</body></html>
"""


def write_report(path: str, summary: Summary, rows: ReportRows, *, compiled_name: str, grader: Any) -> None:
    with open(path, "w", encoding="utf-8") as sink:
        sink.write(render_report(summary, rows, compiled_name=compiled_name, grader=grader))
