"""Evals-style pass/fail (§13, U49)."""

from __future__ import annotations

import graders
from graders import Options
from graders.evals import passed, result_counts

SC = {"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "operation": "eq"}
PY = {"type": "python", "source": "def grade(sample, item):\n    return 0.7\n"}


def test_string_check_passes_at_one():
    g = graders.compile(SC, context="evals")
    assert passed(g, g.run("x", {"a": "x"})) is True
    assert passed(g, g.run("y", {"a": "x"})) is False


def test_error_never_passes_and_counts_as_errored():
    g = graders.compile(SC, context="evals")
    responses = g.run_many([{"model_sample": "x", "item": {"a": "x"}}, {"model_sample": "y", "item": {"a": "x"}}, {"model_sample": "x", "item": {}}])
    assert passed(g, responses[2]) is False
    assert result_counts(g, responses) == {"total": 3, "errored": 1, "failed": 1, "passed": 1}


def test_threshold_rules_and_default_U49():
    """python/score_model: `score >= pass_threshold`; without one, `passed` is null unless U49 sets a default."""
    reward_one = graders.run(SC, "x", {"a": "x"})
    assert passed(graders.compile(PY, context="evals"), reward_one) is None
    with_default = Options().with_values({"evals.default_pass_threshold": 1.0})
    assert passed(graders.compile(PY, with_default, context="evals"), reward_one) is True
    assert passed(graders.compile({**PY, "pass_threshold": 2.0}, context="evals"), reward_one) is False
    ts = {"type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "x", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.5}
    assert passed(graders.compile(ts, context="evals"), reward_one) is True
