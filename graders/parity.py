"""Parity checks: run recorded `/run` cases locally and explain every difference from the recorded response.

A case is one JSON object: `grader`, `model_sample` (or `sample`), optional `item`, and `response` — the
`GraderRunResponse` the hosted endpoint returned (or any recorded expectation; `source` says where it came from).
Compared (spec §3.2–§3.4): reward and sub-rewards within a tolerance, every error flag exactly, whether each details
text is present, `type`, a non-generated `name`, and the *shape* of token usage and the sampled model (model scores
and token counts depend on the model, §9.4). `execution_time` is never compared (§3.4: not a parity target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .engine import CompiledGrader
from .errors import BadRow, GraderValidationError, json_type
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


@dataclass
class CaseReport:
    """One case: the differences found (empty when the local response matches)."""

    index: int
    name: str
    differences: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class ParityReport:
    cases: list[CaseReport]
    options: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def summary(self) -> str:
        bad = [c for c in self.cases if not c.ok]
        lines = [f"parity: {len(self.cases) - len(bad)} of {len(self.cases)} cases match"]
        for case in bad:
            lines.append(f"case {case.index} ({case.name}):")
            lines += [f"  - {d}" for d in case.differences]
            lines += [f"  hint: {h}" for h in case.hints]
        return "\n".join(lines)


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
    types = {grader.get("type")}
    if grader.get("type") == "multi" and isinstance(grader.get("graders"), Mapping):
        types |= {g.get("type") for g in grader["graders"].values() if isinstance(g, Mapping)}
    flat = options.flat()
    names = [n for t in SUSPECT_OPTIONS if t in types for n in SUSPECT_OPTIONS[t]]
    return [f"a score differs; options that decide it (now): " + ", ".join(f"{n}={flat[n]!r}" for n in names if n in flat)] if names else []


def check_cases(
    cases: Iterable[Mapping[str, Any] | BadRow], options: Options | None = None, tol: float = 1e-6
) -> ParityReport:
    """Run each recorded case locally and compare; a case that cannot run (or a `BadRow` a reader could not parse)
    is reported, never raised."""
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
        if not isinstance(case, Mapping) or not isinstance(grader, Mapping) or not isinstance(case.get("response"), Mapping):
            report.differences.append("a case needs 'grader' and 'response' objects")
            continue
        try:
            with CompiledGrader(grader, options) as compiled:
                local = compiled.run(case.get("model_sample"), case.get("item"), sample=case.get("sample")).model_dump()
        except GraderValidationError as exc:
            report.differences.append(f"the local engine rejects this request: {exc.message}")
            continue
        report.differences = compare(local, case["response"], tol)
        report.hints = _hints(grader, report.differences, options)
    return ParityReport(reports, options.flat())
