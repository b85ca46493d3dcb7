"""compile / run / run_many / arun: bad rows are marked and the rest go on."""

from __future__ import annotations

import asyncio

import pytest

import graders
from graders import GraderValidationError, Options

SC = {"type": "string_check", "name": "sc", "input": "{{ sample.output_text }}", "reference": "{{ item.a }}", "operation": "eq"}


def test_compile_once_run_many_in_order():
    compiled = graders.compile(SC)
    rows = [{"model_sample": str(i % 3), "item": {"a": "1"}} for i in range(5000)]
    assert [r.reward for r in compiled.run_many(rows, chunk_size=333)] == [1.0 if i % 3 == 1 else 0.0 for i in range(5000)]


def test_compiled_grader_keeps_one_generated_name():
    compiled = graders.compile({k: v for k, v in SC.items() if k != "name"})
    assert {compiled.run("x", {"a": "x"}).name for _ in range(3)} == {compiled.name}


def test_bad_rows_are_marked_and_the_rest_go_on():
    rows = [
        {"model_sample": "x", "item": {"a": "x"}},
        {"model_sample": 7, "item": {"a": "x"}},
        {"item": {"a": "x"}},
        {"model_sample": "x", "item": "not an object"},
        42,
        "x",
        {"sample": {"output_text": "x"}, "item": {"a": "x"}},
    ]
    out = graders.compile(SC).run_many(rows)
    assert [r.reward for r in out] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert out[1].errors["other_error"] and "'model_sample'" in out[1].details["error"]
    assert out[3].details["param"] == "item"
    assert out[5].errors["other_error"] and out[5].details["param"] == "row"  # a bare string is not a row
    assert out[5].details["error"] == "invalid row: a row must be an object with 'model_sample' (or 'sample') and 'item', got a string"


def test_a_raising_evaluator_fails_only_its_row(monkeypatch):
    compiled = graders.compile(SC)
    real = compiled.evaluator.evaluate

    def flaky(ns):
        if ns.sample["output_text"] == "boom":
            raise RuntimeError("evaluator bug")
        return real(ns)

    monkeypatch.setattr(compiled.evaluator, "evaluate", flaky)
    monkeypatch.setattr(compiled.evaluator, "evaluate_many", lambda batch: [flaky(ns) for ns in batch])
    out = compiled.run_many([{"model_sample": s, "item": {"a": "x"}} for s in ("x", "boom", "x")])
    assert [r.reward for r in out] == [1.0, 0.0, 1.0]
    assert "evaluator bug" in out[1].details["error"] and "traceback" in out[1].details
    single = compiled.run("boom", {"a": "x"})
    assert single.errors["other_error"] and single.reward == 0.0


def test_run_raises_for_malformed_request_naming_the_field():
    with pytest.raises(GraderValidationError) as info:
        graders.run(SC, 12, {})
    assert info.value.param == "model_sample"
    with pytest.raises(GraderValidationError) as info:
        graders.run(SC, "x", ["not", "an", "object"])
    assert info.value.param == "item"


def test_invalid_config_raises_before_any_work():
    with pytest.raises(GraderValidationError):
        graders.compile({**SC, "operation": "contains"})


def test_structured_sample_for_tool_call_graders():
    grader = {"type": "string_check", "input": "{{ sample.output_tools[0].function.name }}", "reference": "lookup", "operation": "eq"}
    calls = [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    assert graders.run(grader, sample={"output_text": "", "output_tools": calls}).reward == 1.0
    assert graders.run(grader, "plain text").errors["invalid_variable_error"]


def test_legacy_reference_answer_U2():
    grader = {**SC, "reference": "{{ item.reference_answer }}"}
    assert graders.run(grader, "x", reference_answer="x").reward == 1.0
    off = Options().with_values({"run.legacy_reference_answer": False})
    assert graders.run(grader, "x", reference_answer="x", options=off).errors["invalid_variable_error"]


def test_async_api():
    async def main():
        compiled = graders.compile(SC)
        results = await asyncio.gather(*(compiled.arun(str(i), {"a": "3"}) for i in range(10)))
        return [r.reward for r in results], (await graders.arun(SC, "x", {"a": "x"})).reward

    rewards, single = asyncio.run(main())
    assert rewards == [1.0 if i == 3 else 0.0 for i in range(10)] and single == 1.0


def test_iter_run_streams_lazily():
    def rows():
        for i in range(10):
            yield {"model_sample": "x", "item": {"a": "x"}}
        raise AssertionError("read past what was asked")

    it = graders.compile(SC).iter_run(rows(), chunk_size=10)
    assert [next(it).reward for _ in range(10)] == [1.0] * 10


def test_every_grader_type_has_exactly_one_evaluator():
    """Grader types and metric names are listed once, in the schema; the config union, the registry and the metric
    table follow it."""
    import typing

    from graders.evaluators import REGISTRY
    from graders.evaluators.text_similarity import METRICS
    from graders.schema import GRADER_TYPES, SIMILARITY_METRICS, AnyGrader

    assert tuple(REGISTRY) == GRADER_TYPES
    config_classes = typing.get_args(typing.get_args(AnyGrader)[0])
    assert [typing.get_args(cls.hints()["type"])[0] for cls in config_classes] == list(GRADER_TYPES)
    assert tuple(METRICS) == SIMILARITY_METRICS


def test_a_bad_row_value_is_answered_in_its_place():
    """A reader yields `BadRow` for a row it cannot use; the engine answers it with other_error, nothing raised."""
    from graders.errors import BadRow

    rows = [{"model_sample": "x", "item": {"a": "x"}}, BadRow("line 2 is not valid JSON", "row"), "x"]
    out = graders.compile(SC).run_many(rows)
    assert [r.reward for r in out] == [1.0, 0.0, 0.0]
    assert out[1].errors["other_error"] and out[1].details == {"error": "invalid row: line 2 is not valid JSON", "param": "row"}


def test_adapter_gives_each_evaluator_kind_the_other():
    """A sync evaluator answers `arun`, an async one answers `run` (on the background loop); both are guarded."""
    from graders.evaluators.base import AsyncEvaluator, SyncEvaluator, adapt
    from graders.namespaces import Namespaces
    from graders.response import Outcome

    class Length(SyncEvaluator):
        type = "string_check"

        def evaluate(self, ns):
            if ns.item.get("boom"):
                raise RuntimeError("sync bug")
            return Outcome(float(len(ns.sample["output_text"])))

    class AsyncLength(AsyncEvaluator):
        type = "python"

        async def aevaluate(self, ns):
            await asyncio.sleep(0)
            if ns.item.get("boom"):
                raise RuntimeError("async bug")
            return Outcome(float(len(ns.sample["output_text"])))

    batch = [Namespaces({"output_text": "abc"}, {}), Namespaces({"output_text": "x"}, {"boom": True})]
    for cls in (Length, AsyncLength):
        runner = adapt(cls(None, Options()))
        assert runner.is_async is (cls is AsyncLength)
        assert runner.run(batch[0]).score == 3.0 and asyncio.run(runner.arun(batch[0])).score == 3.0
        sync_many, async_many = runner.run_many(batch), asyncio.run(runner.arun_many(batch))
        for out in (sync_many, async_many):
            assert out[0].score == 3.0 and out[1].errors == {"other_error": True} and "bug" in out[1].details["error"]
