"""The `graders` command: JSON out, --explain for people, one clear line for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from graders import ERROR_KEYS
from graders.cli import main

ROOT = Path(__file__).resolve().parent.parent
MULTI = str(ROOT / "fixtures" / "graders" / "answer_checks_multi.json")
EXACT = str(ROOT / "fixtures" / "graders" / "exact_answer.json")
DATA = str(ROOT / "fixtures" / "data" / "capitals.jsonl")


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_run_prints_the_wire_response():
    code, out = cli("run", MULTI, "--sample", "The capital is paris.", "--item", '{"answer": "Paris"}')
    body = json.loads(out)
    assert code == 0 and body["reward"] == pytest.approx(0.4)
    assert list(body) == ["reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"]
    assert list(body["metadata"]["errors"]) == list(ERROR_KEYS)
    assert body["sub_rewards"] == {"exact": 0.0, "mentions": 1.0, "apology": 0.0}


def test_run_reads_sample_and_item_files(tmp_path):
    (tmp_path / "s.txt").write_text("Paris")
    (tmp_path / "i.json").write_text('{"answer": "Paris"}')
    code, out = cli("run", EXACT, "--sample-file", str(tmp_path / "s.txt"), "--item", "@" + str(tmp_path / "i.json"))
    assert code == 0 and json.loads(out)["reward"] == 1.0


def test_run_structured_sample():
    grader = str(ROOT / "fixtures" / "graders" / "tool_call_name.json")
    sample = json.dumps({"output_tools": [{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]})
    code, out = cli("run", grader, "--sample-json", sample, "--item", '{"expected_tool": "get_weather"}')
    assert code == 0 and json.loads(out)["reward"] == 1.0


def test_explain_shows_templates_sub_scores_and_errors():
    code, out = cli("run", MULTI, "--sample", "Ottawa", "--item", "{}", "--explain")
    assert code == 0
    assert "answer_checks (multi): reward 0.1" in out
    assert "exact: 0.0 [invalid_variable_error]" in out
    assert "key 'answer' not found" in out
    assert 'input: "Ottawa"' in out


def test_explain_on_multi_shows_the_formula_and_the_values_it_used():
    code, out = cli("run", MULTI, "--sample", "The capital is paris.", "--item", '{"answer": "Paris"}', "--explain")
    assert code == 0
    assert "calculate_output: 0.6 * exact + 0.3 * mentions + 0.1 * (1 - apology)" in out
    assert "with exact = 0.0, mentions = 1.0, apology = 0.0: 0.4" in out


def test_the_multi_fixture_checks_an_apology_anywhere_in_the_answer():
    """`ne "sorry"` compared the whole answer, so "Sorry, I don't know." passed it; the fixture teaches `ilike`
    (contained, any case) combined as `1 - apology`."""
    scores = {}
    for answer in ("Paris.", "Sorry, I don't know.", "I'm so SORRY: Paris"):
        code, out = cli("run", MULTI, "--sample", answer, "--item", '{"answer": "Paris"}')
        scores[answer] = json.loads(out)["sub_rewards"]["apology"]
    assert scores == {"Paris.": 0.0, "Sorry, I don't know.": 1.0, "I'm so SORRY: Paris": 1.0}


def test_options_flag_changes_behaviour():
    code, out = cli("run", MULTI, "--sample", "Ottawa", "--item", "{}", "-o", "multi.sub_error_policy=fail_whole")
    assert json.loads(out)["reward"] == 0.0
    code, out = cli("options", "-o", "formula.log_base=10")
    assert json.loads(out)["formula.log_base"] == "10"


def test_validate_prints_echo_or_envelope(tmp_path):
    code, out = cli("validate", EXACT)
    assert code == 0 and json.loads(out)["grader"]["name"] == "exact_answer"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "multi", "graders": {"input": "x"}, "calculate_output": "input"}))
    code, out = cli("validate", str(bad))
    assert code == 1 and json.loads(out)["error"]["param"] == "graders.input"


def test_batch_marks_bad_rows_and_goes_on(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text(Path(DATA).read_text() + "{not json\n\n" + '{"model_sample": "Paris", "item": {"answer": "Paris"}}\n')
    out_file = tmp_path / "out.jsonl"
    code, _ = cli("batch", MULTI, str(data), "--out", str(out_file))
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert code == 0 and len(lines) == 7
    assert lines[0]["reward"] == pytest.approx(1.0) and lines[-1]["reward"] == pytest.approx(1.0)
    assert lines[5]["metadata"]["errors"]["other_error"] is True
    assert "7 rows, 3 with errors" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe\x00", "is not valid UTF-8"),
        (b"[1, 2]", "must hold a JSON object"),
        (b"[" * 100000 + b"]" * 100000, "nested deeper than 200 levels"),
    ],
)
def test_bad_grader_files_one_clear_line(tmp_path, capsys, content, message):
    path = tmp_path / "g.json"
    path.write_bytes(content)
    code, out = cli("validate", str(path))
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_file_and_bad_item(capsys):
    assert cli("run", "/nonexistent.json", "--sample", "x")[0] == 2
    assert "no such file" in capsys.readouterr().err
    assert cli("run", EXACT, "--sample", "x", "--item", "{oops")[0] == 2
    assert "--item is not valid JSON" in capsys.readouterr().err
    assert cli("run", EXACT, "--sample", "x", "-o", "nope.nope=1")[0] == 2
    assert "unknown option" in capsys.readouterr().err


def test_invalid_request_data_prints_envelope(capsys):
    code, out = cli("run", EXACT, "--sample", "x", "--item", "[1]")
    assert code == 1 and json.loads(out)["error"]["param"] == "item"


def test_console_script_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "graders.cli", "run", EXACT, "--sample", "Paris", "--item", '{"answer": "Paris"}'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(proc.stdout)["reward"] == 1.0


def test_options_doc_table_matches_the_code(monkeypatch):
    """docs/options.md lists the defaults as an empty environment gives them (`HOME='~'` keeps paths generic)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "GRADERS_PYTHON_TIMEOUT", "GRADERS_PYTHON_MEMORY_MB", "GRADERS_IMAGES_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "~")
    doc = (ROOT / "docs" / "options.md").read_text()
    generated = doc.split("\n<!-- options-table -->\n", 1)[1].split("\n<!-- /options-table -->", 1)[0]
    code, table = cli("options", "--markdown")
    assert code == 0 and generated.strip() == table.strip(), "regenerate with the command in docs/options.md"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command in readme


INVALID = ROOT / "fixtures" / "graders" / "invalid"


@pytest.mark.parametrize(("name", "param"), sorted(json.loads((INVALID / "expected.json").read_text()).items()))
def test_validate_rejects_each_invalid_fixture_with_its_param(name, param):
    code, out = cli("validate", str(INVALID / name))
    assert code == 1 and json.loads(out)["error"]["param"] == param


def test_validate_prints_a_warning_line_for_a_source_that_does_not_load_U47(capsys, tmp_path):
    """U47 `warn`: exit 0 with the hosted echo on stdout and the problem on stderr; `error` is the 400 (exit 1)."""
    grader = tmp_path / "one_arg.json"
    grader.write_text(json.dumps({"type": "python", "name": "one_arg", "source": "def grade(sample):\n    return 1.0\n"}))
    code, out = cli("validate", str(grader))
    err = capsys.readouterr().err
    assert code == 0 and json.loads(out)["grader"]["name"] == "one_arg"
    assert err.startswith("graders: warning: source: grade must take exactly two positional arguments")
    code, out = cli("validate", str(grader), "-o", "validate.python_compile_check=error")
    assert code == 1 and json.loads(out)["error"]["param"] == "source"


def test_parity_command_reports_and_sets_exit_status(tmp_path):
    cases = ROOT / "fixtures" / "parity" / "core_expectations.jsonl"
    code, out = cli("parity", str(cases))
    assert code == 0 and "4 of 4 cases match" in out
    lines = cases.read_text().splitlines()
    case = json.loads(lines[0])
    case["response"]["reward"] = 0.25
    changed = tmp_path / "cases.jsonl"
    changed.write_text(json.dumps(case) + "\n")
    code, out = cli("parity", str(changed), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and "reward: local 1.0, recorded 0.25" in report["cases"][0]["differences"]
    assert report["options"]["template.path_grammar"] == "strict"


def test_plugin_commands_are_listed_but_imported_only_to_run():
    """`graders --help` names `image` and `judge` without importing them; running one imports only that one."""
    code = (
        "import contextlib, io, sys\nfrom graders.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n    main(['--help'])\n"
        "print('image' in out.getvalue() and 'judge' in out.getvalue(), 'graders.resources.images' in sys.modules)\n"
        "main(['image', 'list', '--dir', sys.argv[1]], io.StringIO())\n"
        "print('graders.resources.images' in sys.modules, 'graders.evaluators.model.judge' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "no-images-here")], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "False", "True", "False"]
