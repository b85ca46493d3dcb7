"""`sample` and `item` namespaces (§5.3, §5.4, U9–U11)."""

from __future__ import annotations

import json

import hypothesis
import pytest

from graders.errors import RequestError
from graders.namespaces import ModelSample, build_namespaces, structured_sample
from graders._json import dumps
from graders.options import Options, SampleOptions

SO = Options().sample


def test_model_sample_builds_the_captured_shape():
    """§5.4: the captured RFT payload keys, plus output_audio null."""
    s = dict(ModelSample("", SO))
    assert s == {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "", "tool_calls": []}, "finish_reason": "stop"}],
        "output_text": "",
        "output_json": None,
        "output_tools": [],
        "output_reasoning_summary": None,
        "output_audio": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"a": 1}', {"a": 1}), ("0.9", 0.9), ("[1,2]", [1, 2]), ("null", None), ("not json", None), ("{bad", None), ("", None)],
)
def test_output_json_any_json_by_default_U9(text, expected):
    assert ModelSample(text, SO)["output_json"] == expected


def test_output_json_objects_only_switch_U9():
    opts = Options().with_values({"sample.output_json_scope": "objects_only"}).sample
    assert ModelSample("0.9", opts)["output_json"] is None
    assert ModelSample('{"a": 1}', opts)["output_json"] == {"a": 1}


def test_tool_calls_from_model_sample_switch_U10():
    calls = '[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]'
    assert ModelSample(calls, SO)["output_tools"] == []
    opts = Options().with_values({"sample.tools_from_model_sample": True}).sample
    assert ModelSample(calls, opts)["output_tools"][0]["function"]["name"] == "f"


def test_extra_sample_keys_switch_U11():
    opts = Options().with_values({"sample.extra_keys": ["model", "input_tools"]}).sample
    s = dict(ModelSample("x", opts))
    assert s["model"] is None and s["input_tools"] == []


def test_structured_sample_derives_missing_keys():
    """§5.4 local extension: output_text from choices[0].message.content, tools from its tool_calls."""
    calls = [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    s = structured_sample({"choices": [{"message": {"content": '{"k": 2}', "tool_calls": calls}}]}, SO)
    assert s["output_text"] == '{"k": 2}' and s["output_json"] == {"k": 2} and s["output_tools"] == calls
    s = structured_sample({"output_text": "hi"}, SO)
    assert s["choices"][0]["message"]["content"] == "hi" and s["output_tools"] == []


def test_structured_sample_bad_types_name_the_field():
    with pytest.raises(RequestError) as info:
        structured_sample({"output_text": 5}, SO)
    assert info.value.param == "sample.output_text"
    with pytest.raises(RequestError) as info:
        structured_sample({"choices": "x"}, SO)
    assert info.value.param == "sample.choices"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model_sample": 5, "item": {}}, "model_sample"),
        ({"model_sample": None, "item": {}}, "model_sample"),
        ({"model_sample": "x", "item": [1]}, "item"),
        ({"model_sample": "x", "item": {}, "sample": {"output_text": "y"}}, "sample"),
        ({"model_sample": None, "item": {}, "sample": "text"}, "sample"),
    ],
)
def test_bad_request_data_names_the_field(kwargs, param):
    with pytest.raises(RequestError) as info:
        build_namespaces(kwargs["model_sample"], kwargs["item"], kwargs.get("sample"), SO)
    assert info.value.param == param


def test_missing_item_defaults_to_empty_U1_and_can_error():
    assert build_namespaces("x", None, None, SO).item == {}
    with pytest.raises(RequestError):
        build_namespaces("x", None, None, SO, missing_item="error")


def test_legacy_reference_answer_aliases_into_item_U2():
    assert build_namespaces("x", None, None, SO, reference_answer=[1, 2]).item == {"reference_answer": [1, 2]}


@hypothesis.given(hypothesis.strategies.text())
def test_model_sample_json_fast_path_equals_the_built_namespace(text):
    """The template path of `ModelSample.json` (§5.4 layout) must equal encoding the built dict, for any text."""
    sample = ModelSample(text, SampleOptions())
    assert json.loads(sample.json()) == json.loads(dumps(ModelSample(text, SampleOptions()).data()))
    assert sample.json() == dumps(ModelSample(text, SampleOptions()).data())
