"""The fuzzer that found the crashes of tests/test_robustness.py, kept as part of the suite (bounded examples).

Over every grader type, hostile configs (fields of the wrong type, unknown fields, deep values, malformed
templates, text that is not valid Unicode, NaN) and hostile rows (the same, in samples and items): `validate` and
`run` raise nothing but `GraderValidationError`, `run_many` answers every row, each call returns within the time
bound, and no response is ever an "internal error" (an evaluator that raised). Python graders run a few fixed
sources (cheap: their workers stay warm); model graders and cosine are pointed at a closed local port, so they fail
fast with a server-error flag instead of waiting on a network.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graders
from graders import GraderValidationError, Options

TIME_BOUND_S = 10.0
"""The most one call may take (generous: the machine running the suite may be loaded)."""


def _closed_port() -> int:
    """A local port nothing listens on: bound and closed at once, so a connection is refused immediately."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BASE = Options().with_values(
    {"models.base_url": f"http://127.0.0.1:{_closed_port()}/v1", "models.api_key": "sk-fuzz", "models.max_retries": 0, "models.timeout_s": 2.0}
)
VARIANTS = [
    BASE,
    BASE.with_values({"explain": True, "template.json_string_steps": "parse", "string_check.like_wildcards": True}),
    BASE.with_values({"template.path_grammar": "extended", "template.non_string_rendering": "python", "multi.sub_error_policy": "fail_whole",
                      "text_similarity.fuzzy_match.scorer": "wratio_dp", "validate.unknown_fields": "reject"}),
]
"""The defaults, and the switches that take other code paths (explain, U50 parse, U15 wildcards, U7, U14, …)."""

# Text of every kind, lone surrogates (how bytes that are not UTF-8 arrive) and control characters included.
text = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
references = st.sampled_from([
    "{{ sample.output_text }}", "{{ item.a }}", "{{ item.a.b[0] }}", "{{ sample.output_json }}", "{{ sample.output_json[0] }}",
    "{{ sample.output_tools[0].function.arguments.x }}", "{{ sample.choices[0].message.content }}", "{{ item }}",
    "{{ nope.x }}", "{{ item.a[99] }}", "{{ sample.output_txt }}", "{{", "}}", "{{ item.a }", "{{{{ item.a }}}}",
    "{{ item.a[-1] }}", '{{ item["a"] }}', "%", "_", "%a%a%a%ab",
])  # fmt: skip
template = st.one_of(references, st.lists(st.one_of(text, references), max_size=4).map("".join))
leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), text)
json_value = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3), max_leaves=8)


@st.composite
def deep(draw: Any) -> Any:
    """Nesting from shallow to far past the engine's limit."""
    value: Any = draw(leaf)
    for _ in range(draw(st.sampled_from([0, 3, 150, 250, 3000]))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


anything = st.one_of(json_value, deep())


def maybe(valid: Any, strategy: Any = anything) -> Any:
    """Usually the valid value, sometimes something hostile in its place."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), strategy)


SOURCES = [
    "def grade(sample, item):\n    return 1.0\n",
    "def grade(sample, item):\n    return len(str(item)) % 3 / 2\n",
    "def grade(sample, item):\nreturn 1\n",  # does not compile: U47 warns, every row a runtime error
]
MESSAGES = st.lists(st.fixed_dictionaries({"role": maybe("user", text), "content": st.one_of(template, st.lists(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": template}), max_size=2))}), min_size=0, max_size=2)


@st.composite
def grader(draw: Any, kind: str) -> dict[str, Any]:
    if kind == "string_check":
        config = {"type": "string_check", "input": draw(maybe(draw(template))), "reference": draw(maybe(draw(template))),
                  "operation": draw(maybe(draw(st.sampled_from(["eq", "ne", "like", "ilike"])), text))}
    elif kind == "text_similarity":
        metrics = ["fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_3", "rouge_l", "cosine"]
        config = {"type": "text_similarity", "input": draw(maybe(draw(template))), "reference": draw(maybe(draw(template))),
                  "evaluation_metric": draw(maybe(draw(st.sampled_from(metrics)), text))}
    elif kind == "python":
        config = {"type": "python", "source": draw(maybe(draw(st.sampled_from(SOURCES)), json_value))}
        if draw(st.booleans()):
            config["image_tag"] = draw(maybe("2025-05-08", text))
    elif kind == "score_model":
        config = {"type": "score_model", "model": draw(maybe("judge")), "input": draw(maybe(draw(MESSAGES))),
                  "range": draw(maybe([0, 1], st.lists(st.floats(allow_nan=True), max_size=3)))}
    elif kind == "label_model":
        config = {"type": "label_model", "model": "labeller", "input": draw(maybe(draw(MESSAGES))),
                  "labels": draw(maybe(["a", "b"])), "passing_labels": draw(maybe(["a"]))}
    else:
        subs = draw(st.dictionaries(st.sampled_from(["a", "b", "c-d"]), st.sampled_from(["string_check", "text_similarity", "python", "label_model"]).flatmap(lambda k: grader(k)), min_size=0, max_size=3))
        names = list(subs) or ["a"]
        formula = draw(st.sampled_from(["a", "a + b", "max(a, b) / (a - b)", "log(a)", "-a ^ 2", "sqrt(" + names[0] + " - 1)", "((", "1e308 * 1e308"]))
        config = {"type": "multi", "graders": draw(maybe(subs)), "calculate_output": draw(maybe(formula))}
    if draw(st.booleans()):
        config[draw(st.sampled_from(["name", "extra", "pass_threshold", "sampling_params"]))] = draw(st.one_of(anything, deep()))
    return config


rows = st.lists(
    st.one_of(
        st.fixed_dictionaries({"model_sample": text, "item": st.fixed_dictionaries({"a": st.one_of(anything, deep())})}),
        st.fixed_dictionaries({"model_sample": maybe("an answer", text), "item": maybe({"a": "x"}, anything)}),
        st.fixed_dictionaries({"sample": maybe({"output_text": "x", "output_tools": [{"function": {"name": "f", "arguments": "{\"x\": 1}"}}]}, anything), "item": anything}),
        st.fixed_dictionaries({"model_sample": st.sampled_from(["[" * 5000, "{\"a\": [1, 2]}", "NaN", "null", "\"x\""]), "item": deep()}),
        anything,
    ),
    min_size=1,
    max_size=4,
)


def _check(kind: str, config: dict[str, Any], batch: list[Any], options: Options) -> None:
    context = "evals" if kind == "label_model" else "run"
    start = time.perf_counter()
    try:
        graders.validate(config, options, context=context)
        compiled = graders.compile(config, options, context=context)
    except GraderValidationError:
        assert time.perf_counter() - start < TIME_BOUND_S
        return
    with compiled:
        for row in batch[:2]:
            start = time.perf_counter()
            try:
                if isinstance(row, dict) and "sample" in row:
                    response = compiled.run(sample=row["sample"], item=row.get("item"))
                else:
                    response = compiled.run(row.get("model_sample") if isinstance(row, dict) else row, row.get("item") if isinstance(row, dict) else None)
            except GraderValidationError:
                continue
            finally:
                assert time.perf_counter() - start < TIME_BOUND_S
            _no_internal_error(response)
        start = time.perf_counter()
        responses = compiled.run_many(batch)
        assert time.perf_counter() - start < TIME_BOUND_S
        assert len(responses) == len(batch)
        for response in responses:
            _no_internal_error(response)


def _no_internal_error(response: graders.GraderRunResponse) -> None:
    dumped = json.dumps(response.model_dump(mode="json", include_details=True), ensure_ascii=False)
    dumped.encode("utf-8")  # every response can be written out
    assert "internal error" not in dumped, dumped[:2000]
    assert response.reward == response.reward and abs(response.reward) != float("inf")


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.mark.parametrize("kind", ["string_check", "text_similarity", "python", "score_model", "label_model", "multi"])
def test_no_input_crashes_hangs_or_errs_internally(kind):
    @FUZZ
    @given(grader(kind), rows, st.sampled_from(VARIANTS))
    def fuzz(config: dict[str, Any], batch: list[Any], options: Options) -> None:
        _check(kind, config, batch, options)

    fuzz()
