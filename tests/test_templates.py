"""The `{{ namespace.path }}` grammar and rendering (§5.1, §5.5, §5.6, U7, U8, U12, U13, U14)."""

from __future__ import annotations

import pytest

from graders.namespaces import ModelSample, Namespaces, structured_sample
from graders.options import Options
from graders.errors import TemplateError
from graders.templates import compile_template

OPTS = Options()


def ns(model_sample="out", item=None, sample=None, options=OPTS):
    s = structured_sample(sample, options.sample) if sample is not None else ModelSample(model_sample, options.sample)
    return Namespaces(s, item or {})


def render(text, n=None, **overrides):
    opts = Options().with_values(overrides) if overrides else OPTS
    return compile_template(text, opts.template).render(n or ns(options=opts))


def failure(text, n=None, **overrides) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        render(text, n, **overrides)
    return info.value


ITEM = {"a": {"b": [10, {"c": "deep"}]}, "answer": "Paris", "n": 3, "f": 1.0, "t": True, "z": None, "obj": {"x": [1, 2]}, "uni": "日本語"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ item.answer }}", "Paris"),
        ("{{item.answer}}", "Paris"),
        ("{{   item.answer   }}", "Paris"),
        ("Q: {{ item.answer }} / {{ sample.output_text }}!", "Q: Paris / out!"),
        ("{{ item.a.b[1].c }}", "deep"),
        ("{{ item.a.b[0] }}", "10"),
        ("no references", "no references"),
        ("{{ item.uni }}", "日本語"),
        ("{{ sample.output_tools }}", "[]"),
        ("{{ sample.choices[0].message.role }}", "assistant"),
    ],
)
def test_references_resolve(template, expected):
    assert render(template, ns(item=ITEM)) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ item.n }}", "3"),
        ("{{ item.f }}", "1.0"),
        ("{{ item.t }}", "true"),
        ("{{ item.z }}", "null"),
        ("{{ item.obj }}", '{"x": [1, 2]}'),
        ("{{ item.a.b }}", '[10, {"c": "deep"}]'),
    ],
)
def test_non_strings_render_as_json_by_default_U14(template, expected):
    assert render(template, ns(item=ITEM)) == expected


def test_python_rendering_switch_U14():
    opts = {"template.non_string_rendering": "python"}
    n = ns(item=ITEM, options=Options().with_values(opts))
    assert render("{{ item.t }} {{ item.z }} {{ item.obj }}", n, **opts) == "True None {'x': [1, 2]}"


def test_null_is_rendered_unless_switched_U13():
    assert render("{{ item.z }}", ns(item=ITEM)) == "null"
    err = failure("{{ item.z }}", ns(item=ITEM), **{"template.null_is_missing": True})
    assert err.flag == "invalid_variable_error"


@pytest.mark.parametrize(
    ("template", "detail"),
    [
        ("{{ item.missing }}", "key 'missing' not found"),
        ("{{ item.a.b[5] }}", "index 5 is out of range"),
        ("{{ item.answer.x }}", "cannot read key 'x' from a string"),
        ("{{ item.a[0] }}", "cannot index an object with [0]"),
        ("{{ item.answer[0] }}", "cannot index a string with [0]"),
    ],
)
def test_unresolved_reference_names_path_and_step(template, detail):
    err = failure(template, ns(item=ITEM))
    assert err.flag == "invalid_variable_error"
    assert template in err.text and detail in err.text


@pytest.mark.parametrize(
    "template",
    ["{{ item }}", "{{sample}}", "{{ answer }}", "{{ item.a + 1 }}", "{{ item.a | upper }}", "{{ item['a'] }}", "{{ item.a[-1] }}", "{{ item.a[0:1] }}", "{{ }}"],
)
def test_anything_outside_the_grammar_is_an_invalid_variable_U7_U8(template):
    assert failure(template, ns(item=ITEM)).flag == "invalid_variable_error"


def test_unmatched_braces_literal_switch_U8():
    assert render("{{ answer }} and {{ item.answer }}", ns(item=ITEM), **{"template.unmatched_braces": "literal"}) == "{{ answer }} and Paris"


def test_extended_grammar_switch_U7():
    opts = {"template.path_grammar": "extended"}
    item = {"a b": {"c.d": [1, 2, 3]}}
    assert render("{{ item[\"a b\"]['c.d'][-1] }}", ns(item=item), **opts) == "3"


def test_unclosed_braces_are_literal():
    assert render("{{ item.answer", ns(item=ITEM)) == "{{ item.answer"
    assert render("a {{ b {{ item.answer }}", ns(item=ITEM)) == "a {{ b Paris"


def test_rendering_is_one_pass():
    """§5.1 [inf]: substituted text is never rescanned."""
    assert render("{{ item.t }}", ns(item={"t": "{{ item.secret }}", "secret": "x"})) == "{{ item.secret }}"


def test_output_json_unavailable_flag_U12():
    template = "{{ sample.output_json.score }}"
    assert failure(template, ns("not json")).flag == "invalid_variable_error"
    opts = {"template.output_json_unavailable_flag": "sample_parse_error"}
    err = failure(template, ns("not json", options=Options().with_values(opts)), **opts)
    assert err.flag == "sample_parse_error" and "not valid JSON" in err.text
    assert render(template, ns('{"score": 0.5}')) == "0.5"


def test_model_sample_is_verbatim_and_untrimmed():
    assert render("[{{ sample.output_text }}]", ns("  spaced \n")) == "[  spaced \n]"


def test_template_compiled_once_parts_are_literals_and_refs():
    t = compile_template("a {{ item.x }} b {{ sample.output_text }}", OPTS.template)
    assert [p if isinstance(p, str) else p.path for p in t.parts] == ["a ", "item.x", " b ", "sample.output_text"]
    assert t.problems == []
    assert compile_template("{{ item }}", OPTS.template).problems
