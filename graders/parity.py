"""Parity checks: run recorded `/run` cases locally and explain every difference from the recorded response.

A case is one JSON object: `grader`, `model_sample` (or `sample`), optional `item`, and `response` — the
`GraderRunResponse` the hosted endpoint returned (or any recorded expectation; `source` says where it came from).
A case recorded from an endpoint that refused the request holds `status` and the §12.1 `error` envelope instead;
locally the same request must then be refused with the same `param` and `code`.
Compared (§3.2–§3.4): reward and sub-rewards within a tolerance, every error flag exactly, whether each details
text is present, `type`, a non-generated `name`, and the *shape* of token usage and the sampled model (model scores
and token counts depend on the model, §9.4). `execution_time` is never compared (§3.4: not a parity target).

For every disagreement the candidate options of the grader's types (`SUSPECT_OPTIONS`, `COMMON_SUSPECTS`) are
flipped one at a time to each of their other values and the case is run again: the report says which values change
the local result and which make it agree (§14: each unknown is a switch, and a recording settles it).
`record_cases` makes such a file from any endpoint speaking the graders API (`graders parity record`).
"""

from __future__ import annotations

import asyncio
import math
import typing
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .engine import CompiledGrader
from .errors import BadRow, GraderValidationError, json_type
from .namespaces import MISSING
from .options import Options
from .response import FLAG_KEYS, TEXT_ERROR_KEYS

# The options that decide each grader type's numbers: where to look when a reward differs (§14).
SUSPECT_OPTIONS: dict[str, tuple[str, ...]] = {
    "string_check": ("string_check.like_wildcards", "string_check.ilike_fold", "template.non_string_rendering"),
    "text_similarity": (
        "text_similarity.fuzzy_match.scorer",
        "text_similarity.bleu.implementation",
        "text_similarity.bleu.tokenizer",
        "text_similarity.bleu.smoothing",
        "text_similarity.gleu.tokenizer",
        "text_similarity.meteor.tokenizer",
        "text_similarity.rouge.measure",
        "text_similarity.rouge.stemmer",
    ),
    "python": ("python.return_policy", "sample.output_json_scope", "sample.tools_from_model_sample"),
    "score_model": ("score_model.response_schema", "score_model.range_in_schema"),
    "label_model": ("label_model.response_schema",),
    "multi": ("multi.sub_error_policy", "formula.power_assoc", "formula.division_by_zero", "formula.log_base"),
}
# Options that decide a result whatever the grader type: how templates resolve and what `sample` holds (§5).
COMMON_SUSPECTS: tuple[str, ...] = (
    "template.null_is_missing",
    "template.unmatched_braces",
    "template.output_json_unavailable_flag",
    "template.path_grammar",
    "sample.output_json_scope",
    "run.missing_item",
)
FLAG_SUSPECTS: dict[str, tuple[str, ...]] = {
    "python": ("python.limit_violation_flag",),
    "multi": ("formula.eval_error_flag",),
}


@dataclass
class CaseReport:
    """One case: both rewards and flag sets, the differences found (empty when the local response matches), and
    for a disagreement the option values that would change the local result or make it agree."""

    index: int
    name: str
    differences: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    local_reward: float | None = None
    recorded_reward: float | None = None
    local_flags: list[str] = field(default_factory=list)
    recorded_flags: list[str] = field(default_factory=list)
    local_error: str | None = None
    """`HTTP 400 <code> at '<param>'` when the local engine refused the request."""
    recorded_error: str | None = None
    agrees_with: list[str] = field(default_factory=list)
    """`name=value` flips under which the local response matches the recorded one."""
    changed_by: list[str] = field(default_factory=list)
    """`name=value (local reward r)` flips that change the local response without making it match."""

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def difference(self) -> float | None:
        """|local − recorded| reward, when both are numbers."""
        if _number(self.local_reward) and _number(self.recorded_reward):
            return abs(float(self.local_reward) - float(self.recorded_reward))  # type: ignore[arg-type]
        return None

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "ok": self.ok, "difference": self.difference}


@dataclass
class ParityReport:
    cases: list[CaseReport]
    options: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def agreement(self) -> float:
        """Share of cases whose local response matches the recorded one."""
        return sum(c.ok for c in self.cases) / len(self.cases) if self.cases else 1.0

    @property
    def max_difference(self) -> float | None:
        diffs = [d for d in (c.difference for c in self.cases) if d is not None]
        return max(diffs) if diffs else None

    @property
    def mean_difference(self) -> float | None:
        diffs = [d for d in (c.difference for c in self.cases) if d is not None]
        return sum(diffs) / len(diffs) if diffs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "agreement": self.agreement,
            "max_abs_difference": self.max_difference,
            "mean_abs_difference": self.mean_difference,
            "options": self.options,
            "cases": [c.as_dict() for c in self.cases],
        }

    def summary(self) -> str:
        bad = [c for c in self.cases if not c.ok]
        matched = len(self.cases) - len(bad)
        head = f"parity: {matched} of {len(self.cases)} cases match (agreement {100 * self.agreement:.1f} %)"
        if self.max_difference is not None:
            head += f"; |reward difference| max {self.max_difference:.6g}, mean {self.mean_difference:.6g}"
        lines = [head]
        for case in self.cases:
            mark = "ok  " if case.ok else "DIFF"
            diff = f"{case.difference:.6g}" if case.difference is not None else "-"
            local = case.local_error or f"{case.local_reward!r} {_flags(case.local_flags)}"
            recorded = case.recorded_error or f"{case.recorded_reward!r} {_flags(case.recorded_flags)}"
            lines.append(f"{mark} case {case.index} ({case.name}): local {local}, recorded {recorded}, |difference| {diff}")
        for case in bad:
            lines.append(f"case {case.index} ({case.name}):")
            lines += [f"  - {d}" for d in case.differences]
            lines += [f"  hint: {h}" for h in case.hints]
            if case.agrees_with:
                lines.append("  agrees with: " + ", ".join(case.agrees_with))
            if case.changed_by:
                lines.append("  changes the local result: " + ", ".join(case.changed_by))
            if not case.agrees_with and (case.changed_by or case.hints):
                lines.append("  no single option flip makes it agree")
        return "\n".join(lines)


def _flags(flags: list[str]) -> str:
    return "[" + ", ".join(flags) + "]"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=tol) or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(local: Mapping[str, Any], recorded: Mapping[str, Any], tol: float = 1e-6) -> list[str]:
    """The differences between two wire responses, one sentence each."""
    diffs: list[str] = []
    if not _close(local.get("reward"), recorded.get("reward"), tol):
        diffs.append(f"reward: local {local.get('reward')!r}, recorded {recorded.get('reward')!r}")
    lm, rm = local.get("metadata") or {}, recorded.get("metadata") or {}
    if rm.get("type") is not None and lm.get("type") != rm.get("type"):
        diffs.append(f"metadata.type: local {lm.get('type')!r}, recorded {rm.get('type')!r}")
    recorded_name = rm.get("name")
    if isinstance(recorded_name, str) and not recorded_name.startswith("grader-") and lm.get("name") != recorded_name:
        diffs.append(f"metadata.name: local {lm.get('name')!r}, recorded {recorded_name!r}")
    le, re_ = lm.get("errors") or {}, rm.get("errors") or {}
    for key, value in re_.items():
        if key in TEXT_ERROR_KEYS:
            if (value is None) != (le.get(key) is None):
                state = "set" if le.get(key) is not None else "null"
                diffs.append(f"metadata.errors.{key}: local is {state}, recorded {value!r}")
        elif key in FLAG_KEYS and bool(value) != bool(le.get(key)):
            diffs.append(f"metadata.errors.{key}: local {bool(le.get(key))}, recorded {bool(value)}")
    for where, lv, rv in (("sub_rewards", local.get("sub_rewards"), recorded.get("sub_rewards")), ("metadata.scores", lm.get("scores"), rm.get("scores"))):
        lv, rv = lv or {}, rv or {}
        if list(lv) != list(rv):
            diffs.append(f"{where} keys: local {list(lv)}, recorded {list(rv)}")
        for key in rv:
            if key in lv and not _close(lv[key], rv[key], tol):
                diffs.append(f"{where}.{key}: local {lv[key]!r}, recorded {rv[key]!r}")
    if "token_usage" in rm and json_type(lm.get("token_usage")) != json_type(rm.get("token_usage")):
        diffs.append(f"metadata.token_usage: local is {json_type(lm.get('token_usage'))}, recorded is {json_type(rm.get('token_usage'))}")
    if "sampled_model_name" in rm and (lm.get("sampled_model_name") is None) != (rm.get("sampled_model_name") is None):
        diffs.append(f"metadata.sampled_model_name: local {lm.get('sampled_model_name')!r}, recorded {rm.get('sampled_model_name')!r}")
    lu, ru = local.get("model_grader_token_usage_per_model"), recorded.get("model_grader_token_usage_per_model")
    if ru is not None and bool(lu) != bool(ru):
        diffs.append(f"model_grader_token_usage_per_model: local {'has' if lu else 'no'} entries, recorded {'has' if ru else 'no'} entries")
    return diffs


def _hints(grader: Mapping[str, Any], diffs: list[str], options: Options) -> list[str]:
    if not any(d.startswith(("reward", "sub_rewards", "metadata.scores")) for d in diffs):
        return []
    types = set(_types(grader))
    flat = options.flat()
    names = [n for t in SUSPECT_OPTIONS if t in types for n in SUSPECT_OPTIONS[t]]
    return [f"a score differs; options that decide it (now): " + ", ".join(f"{n}={flat[n]!r}" for n in names if n in flat)] if names else []


def _types(grader: Mapping[str, Any]) -> list[str]:
    """The grader types in a config, the top level first."""
    types = [grader.get("type")]
    if grader.get("type") == "multi" and isinstance(grader.get("graders"), Mapping):
        types += [g.get("type") for g in grader["graders"].values() if isinstance(g, Mapping)]
    return [t for t in dict.fromkeys(types) if isinstance(t, str)]


def candidate_options(grader: Mapping[str, Any]) -> list[str]:
    """The options worth flipping for this grader: its types' score and flag deciders, then the common ones."""
    types = _types(grader)
    names = [n for t in types for n in SUSPECT_OPTIONS.get(t, ()) + FLAG_SUSPECTS.get(t, ())]
    return list(dict.fromkeys([*names, *COMMON_SUSPECTS]))


def option_choices(name: str) -> list[Any]:
    """Every value an option can take when it is a switch (a bool or a fixed set of words); [] otherwise."""
    node: Any = Options()
    *groups, last = name.split(".")
    for part in groups:
        node = getattr(node, part, None)
    hint = typing.get_type_hints(type(node)).get(last) if node is not None else None
    if hint is bool:
        return [False, True]
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return []


def _wire_flags(response: Mapping[str, Any]) -> list[str]:
    errors = (response.get("metadata") or {}).get("errors") or {}
    return [k for k in FLAG_KEYS if errors.get(k)]


def _request(case: Mapping[str, Any]) -> tuple[tuple[Any, Any], dict[str, Any]]:
    return (case.get("model_sample"), case.get("item")), {
        "sample": case.get("sample"),
        "reference_answer": case.get("reference_answer", MISSING),
    }


def _run_local(grader: Mapping[str, Any], case: Mapping[str, Any], options: Options) -> dict[str, Any] | GraderValidationError:
    """The local wire response for a case, or the validation error it raises."""
    args, kwargs = _request(case)
    try:
        with CompiledGrader(grader, options) as compiled:
            return compiled.run(*args, **kwargs).model_dump()
    except GraderValidationError as exc:
        return exc


def _recorded_error(case: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The inner object of a recorded §12.1 envelope (`{"error": {...}}`), or None for a recorded response."""
    envelope = case.get("error")
    if not isinstance(envelope, Mapping):
        return None
    inner = envelope.get("error")
    return inner if isinstance(inner, Mapping) else envelope


def _compare_case(local: dict[str, Any] | GraderValidationError, case: Mapping[str, Any], tol: float) -> list[str]:
    recorded = _recorded_error(case)
    if recorded is not None:
        status = case.get("status", 400)
        if not isinstance(local, GraderValidationError):
            return [f"recorded HTTP {status} ({recorded.get('message')!r}, param {recorded.get('param')!r}); the local engine graded the request (reward {local.get('reward')!r})"]
        diffs = []
        for key, value in (("param", local.param), ("code", local.code)):
            if recorded.get(key) != value:
                diffs.append(f"error.{key}: local {value!r}, recorded {recorded.get(key)!r}")
        return diffs
    if isinstance(local, GraderValidationError):
        return [f"the local engine rejects this request: {local.message}"]
    return compare(local, case["response"], tol)


def _flips(grader: Mapping[str, Any], case: Mapping[str, Any], options: Options, base: Any, tol: float) -> tuple[list[str], list[str]]:
    """(flips that make the case agree, flips that only change the local result), one option at a time."""
    agrees: list[str] = []
    changes: list[str] = []
    flat = options.flat()
    for name in candidate_options(grader):
        for value in option_choices(name):
            if name not in flat or value == flat[name]:
                continue
            try:
                flipped = options.with_values({name: value})
            except ValueError:
                continue
            local = _run_local(grader, case, flipped)
            label = f"{name}={value!r}"
            if not _compare_case(local, case, tol):
                agrees.append(label)
            elif _outcome_key(local) != _outcome_key(base):
                reward = "rejected" if isinstance(local, GraderValidationError) else f"local reward {local.get('reward')!r}"
                changes.append(f"{label} ({reward})")
    return agrees, changes


def _outcome_key(local: dict[str, Any] | GraderValidationError) -> Any:
    if isinstance(local, GraderValidationError):
        return ("error", local.param, local.code)
    return (local.get("reward"), tuple(_wire_flags(local)), tuple(sorted((local.get("sub_rewards") or {}).items())))


def check_cases(
    cases: Iterable[Mapping[str, Any] | BadRow], options: Options | None = None, tol: float = 1e-6, *, flip: bool = True
) -> ParityReport:
    """Run each recorded case locally and compare; a case that cannot run (or a `BadRow` a reader could not parse)
    is reported, never raised.

    With `flip`, each disagreement is rerun with every candidate option flipped in turn (see the module doc).
    """
    options = options or Options()
    reports: list[CaseReport] = []
    for index, case in enumerate(cases):
        if isinstance(case, BadRow):
            reports.append(CaseReport(index, f"case-{index}", [f"invalid case: {case.reason}"]))
            continue
        grader = case.get("grader") if isinstance(case, Mapping) else None
        name = str((grader or {}).get("name") or case.get("name", f"case-{index}")) if isinstance(case, Mapping) else f"case-{index}"
        report = CaseReport(index, name)
        reports.append(report)
        recorded_ok = isinstance(case, Mapping) and (isinstance(case.get("response"), Mapping) or isinstance(case.get("error"), Mapping))
        if not isinstance(case, Mapping) or not isinstance(grader, Mapping) or not recorded_ok:
            reason = f" (not recorded: {case['not_recorded']})" if isinstance(case, Mapping) and case.get("not_recorded") else ""
            report.differences.append(f"a case needs 'grader' and 'response' (or 'error') objects{reason}")
            continue
        if isinstance(case.get("response"), Mapping):
            report.recorded_reward = case["response"].get("reward")
            report.recorded_flags = _wire_flags(case["response"])
        else:
            error = _recorded_error(case) or {}
            report.recorded_error = f"HTTP {case.get('status', 400)} {error.get('code')} at {error.get('param')!r}"
        local = _run_local(grader, case, options)
        if isinstance(local, GraderValidationError):
            report.local_error = f"HTTP 400 {local.code} at {local.param!r}"
        else:
            report.local_reward = local.get("reward")
            report.local_flags = _wire_flags(local)
        report.differences = _compare_case(local, case, tol)
        if not report.differences:
            continue
        report.hints = _hints(grader, report.differences, options)
        if flip:
            report.agrees_with, report.changed_by = _flips(grader, case, options, local, tol)
    return ParityReport(reports, options.flat())


async def record_cases(
    grader: Mapping[str, Any], rows: Iterable[Any], client: Any, *, source: str
) -> AsyncIterator[dict[str, Any]]:
    """Send each row's `/run` request through `client` (a `remote.GradersClient`) and yield one case per row, in
    order: the request fields, the endpoint's answer (`response`, or `status` and `error`), where and when.

    A row that is not an object is yielded as a case with its problem, so one bad row never costs the others.
    """
    rows = list(rows)
    window = 64

    async def one(row: Any) -> dict[str, Any]:
        if isinstance(row, BadRow):
            return {"grader": grader, "not_recorded": row.reason}
        if not isinstance(row, Mapping):
            return {"grader": grader, "not_recorded": f"the row is not an object: {str(row)[:200]}"}
        case: dict[str, Any] = {"grader": grader}
        for key in ("model_sample", "sample", "item", "reference_answer"):
            if key in row:
                case[key] = row[key]
        reply = await client.run(dict(case))
        case.update(source=source, recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if reply.status is None:
            case["not_recorded"] = f"{reply.error} (after {reply.attempts} attempts)"
        elif reply.status == 200 and isinstance(reply.body, Mapping):
            case["response"] = reply.body
        else:
            case["status"] = reply.status
            case["error"] = reply.body if isinstance(reply.body, Mapping) else {"error": {"message": str(reply.body)}}
        return case

    for start in range(0, len(rows), window):
        for case in await asyncio.gather(*(one(r) for r in rows[start : start + window])):
            yield case
