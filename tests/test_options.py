"""Options: every unknown of the decision table (§14) is a named, switchable option with the recommended default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graders import OptionError, Options
from graders.options import FIXED_BEHAVIOURS, describe_options

BEHAVIOUR = Path(__file__).resolve().parent.parent / "docs" / "behaviour.md"

def test_every_option_has_a_stable_dotted_name_and_default():
    flat = Options().flat()
    expected = {
        "run.missing_item": "empty", "run.legacy_reference_answer": True, "response.token_usage_format": "object",
        "response.error_keys": "observed24", "validate.name_sub_graders": False, "validate.unknown_fields": "ignore",
        "template.path_grammar": "strict", "template.unmatched_braces": "error", "sample.output_json_scope": "any_json",
        "sample.tools_from_model_sample": False, "sample.extra_keys": [], "template.output_json_unavailable_flag": "invalid_variable_error",
        "template.null_is_missing": False, "template.non_string_rendering": "json", "string_check.like_wildcards": False,
        "string_check.ilike_fold": "lower", "string_check.accept_neq_alias": False,
        "text_similarity.pass_threshold_outside_evals": "ignore", "text_similarity.fuzzy_match.scorer": "ratio",
        "text_similarity.bleu.implementation": "nltk", "text_similarity.bleu.tokenizer": "split",
        "text_similarity.bleu.smoothing": "method1", "text_similarity.gleu.tokenizer": "split",
        "text_similarity.meteor.tokenizer": "split", "text_similarity.rouge.measure": "fmeasure",
        "text_similarity.rouge.stemmer": False, "validate.cosine_evals_only": False,
        "python.return_policy": "lenient", "python.limit_violation_flag": "runtime_error", "python.max_source_bytes": 256000,
        "python.cpu_cores": 2, "python.image_tags": ["2025-05-08", "alpha"], "score_model.response_schema": "cookbook",
        "score_model.range_in_schema": True, "validate.model_allow_list": False, "validate.strict_model_params": False,
        "label_model.sampling_params": "pass_through", "formula.power_assoc": "right", "formula.eval_error_flag": "other_error",
        "formula.division_by_zero": "error", "multi.sub_error_policy": "zero_and_continue", "multi.sub_rewards_keys": "key",
        "multi.sampled_model_name": "first", "validate.label_subset_check": True, "validate.python_compile_check": "warn", "template.json_string_steps": "off",
        "validate.template_syntax": False, "evals.default_pass_threshold": None,
    }  # fmt: skip
    for name, value in expected.items():
        assert flat[name] == value, name


def _decision_section() -> str:
    return BEHAVIOUR.read_text().split("\n## 14. ", 1)[1].split("\n## ", 1)[0]


def _fixed_rows() -> set[str]:
    """The U-ids whose §14 row says the behaviour is fixed (no option)."""
    return set(re.findall(r"^\| (U\d+) \|[^|]+\|[^|]*fixed", _decision_section(), re.M))


def decision_table() -> list[tuple[str, list[str], list[str]]]:
    """(id, option names, default tokens) for each row of the §14 table in docs/behaviour.md."""
    section = _decision_section()
    rows = re.findall(r"^\| (U\d+) \| [^|]+\| ([^|]+)\| ([^|]+)\|", section, re.M)
    return [(uid, re.findall(r"`([^`]+)`", options), re.findall(r"`([^`]+)`", default)) for uid, options, default in rows]


def test_every_unknown_in_the_decision_table_has_an_option():
    """Each U-row of docs/behaviour.md §14 names options that exist, and each option's description cites that id."""
    rows = decision_table()
    assert [uid for uid, _, _ in rows] == [f"U{n}" for n in range(1, 51)]
    descriptions = {name: text for name, _, text in describe_options()}
    fixed = _fixed_rows()
    for uid, names, _ in rows:
        if uid in fixed:
            assert uid in FIXED_BEHAVIOURS, f"{uid} is documented as fixed: graders.options.FIXED_BEHAVIOURS says how"
        else:
            assert names, uid
        for name in names:
            assert name in descriptions, (uid, name)
            assert re.match(rf"{uid}\b", descriptions[name]), (uid, name, descriptions[name])


def test_decision_table_defaults_are_the_code_defaults():
    """The default column of §14 gives, in order, the value `graders options` prints for each option of the row."""
    flat = Options().flat()
    for uid, names, defaults in decision_table():
        for name, token in zip(names, defaults):
            try:
                documented = json.loads(token)
            except ValueError:
                continue  # a prose default such as "never set"
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


def test_the_environment_is_read_when_options_are_built_and_flat_records_it(monkeypatch, tmp_path):
    """`OPENAI_*`, `GRADERS_*` and the cache root are resolved once, by `Options()`; keys show only as set."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("GRADERS_IMAGES_DIR", str(tmp_path / "images"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    opts = Options()
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GRADERS_IMAGES_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name)
    flat = opts.with_values({"explain": True}).flat()
    assert flat["models.base_url"] == "http://127.0.0.1:9/v1" and flat["models.api_key"] == "<set>"
    assert flat["python.images_dir"] == str(tmp_path / "images")
    assert flat["text_similarity.meteor.wordnet_cache"] == str(tmp_path / "cache" / "graders" / "nltk_data")
    assert opts.models.api_key == "sk-from-env" and "sk-from-env" not in repr(opts)
    assert Options().models.api_key is None and Options().models.base_url == "https://api.openai.com/v1"


def test_path_options_expand_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    opts = Options().with_values({"models.cache_path": "~/calls.sqlite", "python.images_dir": "~/img"})
    assert opts.models.cache_path == str(tmp_path / "calls.sqlite") and opts.python.images_dir == str(tmp_path / "img")


def test_option_values_are_checked_against_their_types():
    """Numbers widen (an int for a float), lists become tuples, records reject unknown keys; nothing else coerces."""
    opts = Options().with_values({"python.timeout_s": 5, "sample.extra_keys": ["model"], "python.workers": 2.0})
    assert opts.python.timeout_s == 5.0 and opts.sample.extra_keys == ("model",) and opts.python.workers == 2
    for values, message in [
        ({"python.timeout_s": "5"}, "'python.timeout_s': expected a number, got '5'"),
        ({"python.timeout_s": 0}, "must be > 0"),
        ({"string_check.like_wildcards": 1}, "expected a boolean"),
        ({"sample.extra_keys": ["model", "zz"]}, "'sample.extra_keys[1]': expected one of 'model', 'input_tools', got 'zz'"),
        ({"models.endpoints": [{"model": "m", "url": "x"}]}, "unknown key 'url'"),
        ({"models.endpoints": [{"base_url": "x"}]}, "missing key 'model'"),
    ]:
        with pytest.raises(OptionError, match=re.escape(message)):
            Options().with_values(values)


def test_fixed_behaviours_have_no_option():
    """Unknowns with one behaviour and no reader are documented, not options (U3, U39's extensions, U43, U45)."""
    assert set(FIXED_BEHAVIOURS) == _fixed_rows()
    removed = {"errors.never_set", "formula.extensions", "formula.identifier_pattern", "multi.details_join", "validate.envelope_style"}
    assert not removed & set(Options().flat())
