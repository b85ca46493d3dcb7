"""Options: every unknown of the decision table (§14) is a named, switchable option with the recommended default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graders import OptionError, Options
from graders.options import describe_options

BEHAVIOUR = Path(__file__).resolve().parent.parent / "docs" / "behaviour.md"

# The one place that lists where graders/options.py does not yet match docs/behaviour.md §14. These options and
# defaults are being added to the code; delete an entry when its change lands (the tests below fail on a stale
# entry, so both lists only shrink).
NOT_YET_OPTIONS = {"template.json_string_steps": "U50", "formula.identifier_pattern": "U39"}
NOT_YET_DEFAULTS = {"text_similarity.fuzzy_match.scorer": "U19", "validate.python_compile_check": "U47"}


def test_every_option_has_a_stable_dotted_name_and_default():
    flat = Options().flat()
    expected = {
        "run.missing_item": "empty", "run.legacy_reference_answer": True, "response.token_usage_format": "object",
        "response.error_keys": "observed24", "validate.name_sub_graders": False, "validate.unknown_fields": "ignore",
        "template.path_grammar": "strict", "template.unmatched_braces": "error", "sample.output_json_scope": "any_json",
        "sample.tools_from_model_sample": False, "sample.extra_keys": [], "template.output_json_unavailable_flag": "invalid_variable_error",
        "template.null_is_missing": False, "template.non_string_rendering": "json", "string_check.like_wildcards": False,
        "string_check.ilike_fold": "lower", "string_check.accept_neq_alias": False,
        "text_similarity.pass_threshold_outside_evals": "ignore", "text_similarity.fuzzy_match.scorer": "wratio_dp",
        "text_similarity.bleu.implementation": "nltk", "text_similarity.bleu.tokenizer": "split",
        "text_similarity.bleu.smoothing": "method1", "text_similarity.gleu.tokenizer": "split",
        "text_similarity.meteor.tokenizer": "split", "text_similarity.rouge.measure": "fmeasure",
        "text_similarity.rouge.stemmer": False, "validate.cosine_evals_only": False,
        "python.return_policy": "lenient", "python.limit_violation_flag": "runtime_error", "python.max_source_bytes": 256000,
        "python.cpu_cores": 2, "python.image_tags": ["2025-05-08", "alpha"], "score_model.response_schema": "cookbook",
        "score_model.range_in_schema": True, "validate.model_allow_list": False, "validate.strict_model_params": False,
        "label_model.sampling_params": "pass_through", "formula.power_assoc": "right", "formula.eval_error_flag": "other_error",
        "formula.division_by_zero": "error", "multi.sub_error_policy": "zero_and_continue", "multi.sub_rewards_keys": "key",
        "multi.sampled_model_name": "first", "validate.label_subset_check": True, "validate.python_compile_check": True,
        "validate.template_syntax": False, "evals.default_pass_threshold": None,
    }  # fmt: skip
    for name, value in expected.items():
        assert flat[name] == value, name


def decision_table() -> list[tuple[str, list[str], list[str]]]:
    """(id, option names, default tokens) for each row of the §14 table in docs/behaviour.md."""
    section = BEHAVIOUR.read_text().split("\n## 14. ", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (U\d+) \| [^|]+\| ([^|]+)\| ([^|]+)\|", section, re.M)
    return [(uid, re.findall(r"`([^`]+)`", options), re.findall(r"`([^`]+)`", default)) for uid, options, default in rows]


def test_every_unknown_in_the_decision_table_has_an_option():
    """Each U-row of docs/behaviour.md §14 names options that exist, and each option's description cites that id."""
    rows = decision_table()
    assert [uid for uid, _, _ in rows] == [f"U{n}" for n in range(1, 51)]
    descriptions = {name: text for name, _, text in describe_options()}
    for uid, names, _ in rows:
        assert names, uid
        for name in names:
            if name in NOT_YET_OPTIONS:
                assert name not in descriptions, f"{name} exists now: remove it from NOT_YET_OPTIONS"
                continue
            assert name in descriptions, (uid, name)
            assert re.match(rf"{uid}\b", descriptions[name]), (uid, name, descriptions[name])


def test_decision_table_defaults_are_the_code_defaults():
    """The default column of §14 gives, in order, the value `graders options` prints for each option of the row."""
    flat = Options().flat()
    for uid, names, defaults in decision_table():
        for name, token in zip(names, defaults):
            if name in NOT_YET_OPTIONS:
                continue
            try:
                documented = json.loads(token)
            except ValueError:
                continue  # a prose default such as "never set"
            if name in NOT_YET_DEFAULTS:
                assert flat[name] != documented, f"{name} matches now: remove it from NOT_YET_DEFAULTS"
            else:
                assert flat[name] == documented, (uid, name, flat[name], documented)


def test_with_values_errors_name_the_option():
    with pytest.raises(OptionError, match="unknown option 'template.nope'"):
        Options().with_values({"template.nope": 1})
    with pytest.raises(OptionError, match="formula.power_assoc"):
        Options().with_values({"formula.power_assoc": "middle"})
    with pytest.raises(OptionError, match="is a group"):
        Options().with_values({"formula": {}})


def test_python_limits_from_environment(monkeypatch):
    monkeypatch.setenv("GRADERS_PYTHON_TIMEOUT", "7.5")
    monkeypatch.setenv("GRADERS_PYTHON_MEMORY_MB", "512")
    opts = Options()
    assert opts.python.timeout_s == 7.5 and opts.python.memory_bytes == 512 * 1024**2
    monkeypatch.setenv("GRADERS_PYTHON_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="GRADERS_PYTHON_TIMEOUT"):
        Options()


def test_options_are_immutable():
    with pytest.raises(Exception):
        Options().template.path_grammar = "extended"  # type: ignore[misc]


def test_secrets_are_redacted_from_flat_and_described_options():
    from graders.options import describe_options

    opts = Options().with_values(
        {"models.api_key": "sk-secret", "models.endpoints": [{"model": "m*", "base_url": "http://x", "api_key": "sk-2"}]}
    )
    flat = opts.flat()
    assert flat["models.api_key"] == "<set>" and "sk-" not in repr(flat)
    assert "sk-" not in repr(describe_options(opts))
