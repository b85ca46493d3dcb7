"""Every Python block of the README runs as written, from the checkout's root (where `fixtures/` is).

A block that needs what this machine cannot have (a judge server, a Ray cluster, a trainer's GPU) starts with
`# needs: <what>` and is only compiled, so it still may not be a sketch with `...` or `await` outside a function.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_every_readme_python_block_runs(line, code, tmp_path):
    compile(code, f"README.md:{line}", "exec")
    if code.startswith("# needs:"):
        return
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README.md line {line}:\n{done.stderr[-3000:]}"
