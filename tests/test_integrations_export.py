"""`graders export {trl,verl,openrlhf}`: a self-contained reward file that compiles the embedded grader once."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pytest

from graders.cli import main

CHECK = {"type": "string_check", "name": "exact \"quoted\" \\ name", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}", "operation": "eq"}
PYTHON = {"type": "python", "name": "tricky", "source": 'def grade(sample, item):\n    """doc with \\\\ and \'\'\' and """\n    return 1.0 if sample["output_text"] == item["answer"] else 0.0\n'}


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("exported_reward", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("grader", [CHECK, PYTHON], ids=["quotes-in-name", "python-source"])
def test_exported_file_embeds_the_grader_and_needs_no_other_file(tmp_path: Path, grader: dict[str, Any]) -> None:
    source = tmp_path / "grader.json"
    source.write_text(json.dumps(grader))
    out = tmp_path / "reward.py"
    code, _ = cli("export", "trl", str(source), "--out", str(out), "-o", "python.timeout_s=30")
    assert code == 0
    source.unlink()  # the file is all the trainer needs
    module = load(out)
    assert module.GRADER == grader and module.OPTIONS == {"python.timeout_s": 30}
    reward_func = module.reward_func
    assert reward_func.grader.options.python.timeout_s == 30
    assert reward_func(prompts=["p", "q"], completions=["Paris", "Rome"], answer=["Paris", "Paris"]) == [1.0, 0.0]


def test_export_validates_the_grader_before_writing(tmp_path: Path) -> None:
    source = tmp_path / "grader.json"
    source.write_text(json.dumps({**CHECK, "operation": "nearly"}))
    out = tmp_path / "reward.py"
    code, printed = cli("export", "verl", str(source), "--out", str(out))
    assert code == 1 and json.loads(printed)["error"]["param"] == "operation" and not out.exists()


def test_export_refuses_flags_that_do_not_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "grader.json"
    source.write_text(json.dumps(CHECK))
    out = str(tmp_path / "reward.py")
    assert cli("export", "trl", str(source), "--out", out, "--error-reward", "-1")[0] == 2
    assert "does not apply to TRL" in capsys.readouterr().err
    assert cli("export", "verl", str(source), "--out", out, "--item", "answer=ground_truth", "--item", "broken")[0] == 2
    assert "KEY=PATH" in capsys.readouterr().err
    assert cli("export", "verl", str(source), "--out", out, "--sample", "completion")[0] == 2
    assert "'completion' is not a field verl passes" in capsys.readouterr().err
    assert cli("export", "openrlhf", str(source), "--out", out, "-o", "python.nope=1")[0] == 2
    assert "python.nope" in capsys.readouterr().err


def test_a_grader_name_or_path_cannot_put_code_in_the_exported_file(tmp_path: Path) -> None:
    """The name and the output path are written into the file's docstring: a `\"\"\"` in either stays text."""
    marker = tmp_path / "PWNED"
    name = f'x""";open({str(marker)!r}, "w");"""'
    source = tmp_path / "grader.json"
    source.write_text(json.dumps({**CHECK, "name": name}))
    where = tmp_path / 'dir """ with quotes'
    where.mkdir()
    out = where / "reward.py"
    for trainer in ("trl", "verl", "openrlhf"):
        assert cli("export", trainer, str(source), "--out", str(out))[0] == 0
        module = load(out)
        assert not marker.exists() and module.GRADER["name"] == name and repr(name) in module.__doc__
