"""`graders image`: a local venv with the hosted python grader image's exact pins (§8.5), built for real."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from graders.cli import main
from graders.resources.images import (
    IMAGES,
    ImageInstallError,
    ImageNotInstalled,
    canonical_tag,
    install,
    installed,
    resolve_interpreter,
)

BEHAVIOUR = Path(__file__).resolve().parent.parent / "docs" / "behaviour.md"
PIN = "six==1.16.0"


def test_pins_are_the_documented_ones():
    section = BEHAVIOUR.read_text().split("### 8.5", 1)[1].split("\n## ", 1)[0]
    listed = section.split("Packages of image `2025-05-08`", 1)[1].split("NLTK data", 1)[0]
    assert IMAGES["2025-05-08"] == tuple(re.findall(r"[\w.-]+==[\w.]+", listed))
    assert canonical_tag("alpha") == canonical_tag("2025-05-08") == "2025-05-08"


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    install("2025-05-08", str(root), packages=[PIN], out=io.StringIO())
    return root


def test_install_builds_a_checked_venv_with_a_manifest(image_root: Path):
    env = installed("alpha", str(image_root))
    assert env is not None and env.path == image_root / "2025-05-08"
    assert env.manifest["pins"] == [PIN] and env.manifest["packages_overridden"] is True
    assert env.manifest["installed_versions"] == {"six": "1.16.0"}
    assert "six==1.16.0" in env.manifest["freeze"]
    assert env.manifest["nltk_data_missing"] == ["punkt", "stopwords", "wordnet", "omw-1.4", "names"]
    assert [p.name for p in image_root.iterdir()] == ["2025-05-08"]
    probe = "import six, sys; print(six.__version__, sys.prefix)"
    ran = subprocess.run([env.interpreter, "-c", probe], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["1.16.0", str(env.path)]
    pip = subprocess.run([env.path / "bin" / "pip", "--version"], capture_output=True, text=True, check=True)
    assert str(env.path / "lib") in pip.stdout

    log = io.StringIO()
    assert install("2025-05-08", str(image_root), packages=[PIN], out=log) == env.path
    assert "already installed" in log.getvalue()
    assert installed("2025-05-08", str(image_root)).manifest["created"] == env.manifest["created"]


def test_a_failed_install_leaves_no_image(tmp_path: Path):
    with pytest.raises(ImageInstallError, match=r"pip install for image 2025-05-08 failed[\s\S]*six==0\.0\.999"):
        install("2025-05-08", str(tmp_path), packages=["six==0.0.999"], out=io.StringIO())
    assert list(tmp_path.iterdir()) == []
    assert installed("2025-05-08", str(tmp_path)) is None
    with pytest.raises(ImageInstallError, match="exact pins"):
        install("2025-05-08", str(tmp_path), packages=["six"], out=io.StringIO())


def test_resolve_interpreter(image_root: Path, tmp_path: Path):
    image = str(image_root / "2025-05-08" / "bin" / "python")
    described = f"image 2025-05-08 ({image_root / '2025-05-08'})"
    assert resolve_interpreter("auto", None, str(image_root)) == (image, described)
    assert resolve_interpreter("image", "alpha", str(image_root))[0] == image
    assert resolve_interpreter("current", None, str(image_root)) == (sys.executable, f"current ({sys.prefix})")
    assert resolve_interpreter("auto", None, str(tmp_path))[0] == sys.executable
    with pytest.raises(ImageNotInstalled, match="image 2025-05-08 is not installed.*`graders image install 2025-05-08"):
        resolve_interpreter("image", None, str(tmp_path))


def test_cli(image_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = io.StringIO()
    assert main(["image", "path", "2025-05-08", "--dir", str(tmp_path)], out=out) == 1
    assert out.getvalue() == ""
    assert f"run `graders image install 2025-05-08 --dir {tmp_path}`" in capsys.readouterr().err

    assert main(["image", "path", "2024-01-01", "--dir", str(tmp_path)], out=out) == 2
    assert "unknown image tag '2024-01-01'; known: 2025-05-08, alpha" in capsys.readouterr().err
    assert main(["image", "install", "nope", "--dir", str(tmp_path)], out=out) == 2

    out = io.StringIO()
    assert main(["image", "path", "alpha", "--dir", str(image_root)], out=out) == 0
    assert out.getvalue() == f"{image_root / '2025-05-08' / 'bin' / 'python'}\n"
    out = io.StringIO()
    assert main(["image", "list", "--dir", str(image_root)], out=out) == 0
    assert out.getvalue().startswith(f"2025-05-08  {image_root / '2025-05-08'}  python ")
    assert "1 pins (packages overridden)" in out.getvalue()
    manifest = json.loads((image_root / "2025-05-08" / "graders-image.json").read_text())
    assert manifest["interpreter"] == str(image_root / "2025-05-08" / "bin" / "python")


def test_python_graders_run_in_the_installed_image(image_root: Path):
    from graders import Options, run

    grader = {"type": "python", "source": "import six, sys\n\ndef grade(sample, item):\n    return 1.0 if sys.prefix == item['prefix'] else 0.0\n"}
    env = installed("2025-05-08", str(image_root))
    opts = Options().with_values({"python.images_dir": str(image_root), "python.environment": "image"})
    resp = run(grader, "x", {"prefix": str(env.path)}, options=opts)
    assert resp.reward == 1.0, resp.details
    assert resp.details["environment"] == f"image 2025-05-08 ({env.path})" and resp.details["interpreter"] == env.interpreter
    here = {"type": "python", "source": "import sys\n\ndef grade(sample, item):\n    return 1.0 if sys.prefix == item['prefix'] else 0.0\n"}
    current = run(here, "x", {"prefix": sys.prefix}, options=opts.with_values({"python.environment": "current"}))
    assert current.reward == 1.0 and current.details["environment"] == f"current ({sys.prefix})"


def test_environment_image_without_an_install_is_a_server_error_with_the_command(tmp_path: Path):
    from graders import Options, run

    opts = Options().with_values({"python.images_dir": str(tmp_path), "python.environment": "image"})
    resp = run({"type": "python", "source": "def grade(sample, item):\n    return 1.0\n"}, "x", options=opts)
    assert resp.reward == 0.0 and resp.errors["python_grader_server_error_type"] == "sandbox_unavailable"
    assert "graders image install 2025-05-08" in resp.details["error"]
