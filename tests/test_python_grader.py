"""`python` graders: the §8.1 contract and the §8.2 return-value policy (U26), run in real sandboxed workers."""

from __future__ import annotations

import pytest

import graders
from graders import Options


def grade_with(body: str, sample: str = "hello", item: dict | None = None, **opts) -> graders.GraderRunResponse:
    source = "def grade(sample, item):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    return graders.run({"type": "python", "source": source}, sample, item or {}, options=Options().with_values(opts) if opts else None)


def test_whole_module_with_helpers_and_classes():
    source = (
        "import json\nfrom dataclasses import dataclass\n\n@dataclass\nclass Rule:\n    weight: float\n\n"
        "def helper(text):\n    return len(text)\n\nRULE = Rule(0.5)\n\n"
        "def grade(sample, item):\n    return RULE.weight * helper(sample['output_text']) / item['n']\n"
    )
    resp = graders.run({"type": "python", "source": source}, "abcd", {"n": 4})
    assert resp.reward == 0.5 and not resp.failed
    assert resp.details["sandbox"] in ("bubblewrap", "landlock")


def test_grader_sees_the_sample_namespace():
    resp = grade_with("return float(sample['output_json']['score']) + len(sample['output_tools'])", '{"score": 0.25}')
    assert resp.reward == 0.25


@pytest.mark.parametrize(
    ("expr", "reward"),
    [("0.75", 0.75), ("3", 3.0), ("-2.5", -2.5), ("True", 1.0), ("False", 0.0), ("__import__('numpy').float32(0.5)", 0.5), ("__import__('numpy').int64(4)", 4.0)],
)
def test_numbers_become_rewards_unclamped_U26(expr, reward):
    resp = grade_with(f"return {expr}")
    assert resp.reward == reward and not resp.failed


@pytest.mark.parametrize(
    "expr", ["'0.9'", "None", "[1]", "{'a': 1}", "1 + 2j", "float('nan')", "float('inf')", "-float('inf')", "object()", "__import__('numpy').float64('nan')"]
)
def test_other_returns_are_runtime_errors_U26(expr):
    resp = grade_with(f"return {expr}")
    assert resp.reward == 0.0 and resp.errors["python_grader_runtime_error"] is True
    assert "grade() returned" in resp.errors["python_grader_runtime_error_details"]


def test_float_int_only_and_coerce_policies_U26():
    assert grade_with("return True", **{"python.return_policy": "float_int_only"}).errors["python_grader_runtime_error"]
    assert grade_with("return '0.9'", **{"python.return_policy": "coerce"}).reward == 0.9
    assert grade_with("return 'x'", **{"python.return_policy": "coerce"}).errors["python_grader_runtime_error"]


def test_exception_gives_the_users_traceback():
    resp = grade_with("x = item['missing']\nreturn 1")
    details = resp.errors["python_grader_runtime_error_details"]
    assert resp.reward == 0.0 and "KeyError: 'missing'" in details and 'File "<grader>", line 2' in details
    assert "worker.py" not in details


def test_import_time_error_and_missing_grade():
    resp = graders.run({"type": "python", "source": "raise RuntimeError('at import')\ndef grade(s, i):\n    return 1\n"}, "x")
    assert "at import" in resp.errors["python_grader_runtime_error_details"]
    no_grade = Options().with_values({"validate.python_compile_check": "off"})
    resp = graders.run({"type": "python", "source": "grade = 5\n"}, "x", options=no_grade)
    assert "callable grade" in resp.errors["python_grader_runtime_error_details"]


def test_printed_output_stays_out_of_the_response_U28():
    resp = grade_with("print('debug line')\nreturn 1")
    assert resp.details["output"] == "debug line\n"
    assert "debug line" not in str(resp.model_dump())


def test_numpy_and_rapidfuzz_graders():
    body = "import numpy as np\nfrom rapidfuzz import fuzz\nreturn float(np.mean([fuzz.ratio(sample['output_text'], item['ref']) / 100, 1.0]))"
    resp = grade_with(body, "hello world", {"ref": "hello world"})
    assert resp.reward == 1.0


def test_each_call_gets_fresh_copies():
    body = "item.setdefault('seen', 0)\nitem['seen'] += 1\nreturn item['seen']"
    compiled = graders.compile({"type": "python", "source": "def grade(sample, item):\n" + "".join(f"    {l}\n" for l in body.splitlines())})
    item = {}
    assert [compiled.run("x", item).reward for _ in range(3)] == [1.0, 1.0, 1.0] and item == {}


def test_run_many_matches_run_and_multi_with_python_sub_grader():
    compiled = graders.compile({"type": "python", "source": "def grade(sample, item):\n    return len(sample['output_text']) * item['k']\n"})
    rows = [{"model_sample": "x" * (i % 7), "item": {"k": 0.5}} for i in range(1000)]
    assert [r.reward for r in compiled.run_many(rows)] == [(i % 7) * 0.5 for i in range(1000)]
    multi = {
        "type": "multi",
        "graders": {
            "exact": {"type": "string_check", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "operation": "eq"},
            "length": {"type": "python", "source": "def grade(sample, item):\n    return len(sample['output_text']) / 10\n"},
        },
        "calculate_output": "exact + length",
    }
    resp = graders.run(multi, "Paris", {"a": "Paris"})
    assert resp.reward == 1.5 and resp.sub_rewards == {"exact": 1.0, "length": 0.5}


COUNTER = "calls = []\n\ndef grade(sample, item):\n    calls.append(1)\n    return float(len(calls))\n"


def test_warm_workers_keep_module_state_between_samples():
    compiled = graders.compile({"type": "python", "source": COUNTER}, Options().with_values({"python.workers": 1}))
    assert [r.reward for r in compiled.run_many([{"model_sample": s} for s in ["a", "b", "c"]])] == [1.0, 2.0, 3.0]


def test_fresh_process_mode_carries_no_state_between_samples():
    opts = Options().with_values({"python.workers": 1, "python.fresh_process": True})
    compiled = graders.compile({"type": "python", "source": COUNTER}, opts)
    assert [r.reward for r in compiled.run_many([{"model_sample": s} for s in ["a", "b", "c"]])] == [1.0, 1.0, 1.0]
    assert compiled.run("d").reward == 1.0


def test_fresh_process_mode_reports_exits_and_timeouts_per_row():
    source = (
        "import os, time\n\ndef grade(sample, item):\n"
        "    if sample['output_text'] == 'exit':\n        os._exit(3)\n"
        "    if sample['output_text'] == 'hang':\n        time.sleep(30)\n"
        "    return 0.25\n"
    )
    opts = Options().with_values({"python.workers": 1, "python.fresh_process": True, "python.timeout_s": 1})
    out = graders.compile({"type": "python", "source": source}, opts).run_many([{"model_sample": s} for s in ["ok", "exit", "hang", "ok"]])
    assert [r.reward for r in out] == [0.25, 0.0, 0.0, 0.25]
    assert "exited with status 3" in out[1].errors["python_grader_runtime_error_details"]
    assert "exceeded 1 s" in out[2].errors["python_grader_runtime_error_details"]


def test_a_row_json_cannot_hold_fails_alone_naming_the_field():
    compiled = graders.compile({"type": "python", "source": "def grade(sample, item):\n    return 1.0\n"})
    out = compiled.run_many([{"model_sample": "a", "item": {}}, {"model_sample": "b", "item": {"x": object()}}, {"model_sample": "c", "item": {}}])
    assert [r.reward for r in out] == [1.0, 0.0, 1.0]
    assert out[1].errors["other_error"] and out[1].details["param"] == "item.x" and "which JSON cannot hold" in out[1].details["error"]


def test_concurrent_single_calls_are_batched_and_each_gets_its_own_result():
    """Many concurrent `arun` calls share frames (dynamic batching) yet each gets its own row's grade or error."""
    import asyncio

    source = "def grade(sample, item):\n    if item['i'] == 7:\n        raise ValueError('row seven')\n    return item['i'] / 2\n"
    compiled = graders.compile({"type": "python", "source": source}, Options().with_values({"python.workers": 1, "python.chunk_size": 16}))

    async def many():
        return await asyncio.gather(*(compiled.arun("x", {"i": i}) for i in range(200)))

    out = asyncio.run(many())
    assert [r.reward for r in out] == [0.0 if i == 7 else i / 2 for i in range(200)]
    assert "row seven" in out[7].errors["python_grader_runtime_error_details"]
    assert not any(r.failed for i, r in enumerate(out) if i != 7)
