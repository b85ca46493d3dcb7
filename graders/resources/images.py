"""Local environments with exactly the packages of the hosted python grader image (§8.5).

`graders image install 2025-05-08` builds a virtual environment with the image's pins and the NLTK data that can
be had offline; `resolve_interpreter` tells the python evaluator which interpreter runs grader code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

DEFAULT_TAG = "2025-05-08"
IMAGES: dict[str, tuple[str, ...]] = {
    "2025-05-08": (
        "numpy==2.2.4", "scipy==1.15.2", "sympy==1.13.3", "pandas==2.2.3", "rapidfuzz==3.10.1", "scikit-learn==1.6.1",
        "rouge-score==0.1.2", "deepdiff==8.4.2", "jsonschema==4.23.0", "pydantic==2.10.6", "pyyaml==6.0.2",
        "nltk==3.9.1", "sqlparse==0.5.3", "rdkit==2024.9.6", "scikit-bio==0.6.3", "ast-grep-py==0.36.2",
    ),
}  # fmt: skip
ALIASES = {"alpha": "2025-05-08"}
NLTK_DATA = ("punkt", "stopwords", "wordnet", "omw-1.4", "names")
MANIFEST = "graders-image.json"

_PROBE = """
import json, platform, sys
from importlib import metadata
versions = {}
for name in sys.argv[1:]:
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
freeze = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
print(json.dumps({"python": platform.python_version(), "versions": versions, "freeze": freeze}))
"""


class UnknownImageTag(ValueError):
    """A tag that names no image this engine knows (§8.5, U32)."""


class ImageNotInstalled(RuntimeError):
    """`python.environment = "image"` asked for an image that has not been installed."""


class ImageInstallError(RuntimeError):
    """Building an image environment failed; nothing was left in place."""


@dataclass(frozen=True)
class ImageEnv:
    tag: str
    path: Path
    interpreter: str
    manifest: dict[str, Any]


def known_tags() -> list[str]:
    return sorted([*IMAGES, *ALIASES])


def canonical_tag(tag: str) -> str:
    """The image a tag stands for: `alpha` is treated like `2025-05-08` (U32)."""
    tag = ALIASES.get(tag, tag)
    if tag not in IMAGES:
        raise UnknownImageTag(f"unknown image tag {tag!r}; known: {', '.join(known_tags())}")
    return tag


def install_command(tag: str, root: str | None = None) -> str:
    """The command that installs `tag`, with `--dir` when the images live elsewhere than the default."""
    return f"graders image install {tag}" + (f" --dir {root}" if root else "")


def not_installed(tag: str, root: str) -> str:
    """Why an image cannot be used, with the command that installs it."""
    return f"image {tag} is not installed in {root}; run `{install_command(tag, root)}`"


def installed(tag: str, root: str) -> ImageEnv | None:
    """The installed environment of `tag`, if its manifest exists and its interpreter is executable."""
    tag = canonical_tag(tag)
    path = Path(root) / tag
    interpreter = path / "bin" / "python"
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not os.access(interpreter, os.X_OK):
        return None
    return ImageEnv(tag, path, str(interpreter), manifest)


def resolve_interpreter(environment: str, image_tag: str | None, root: str) -> tuple[str, str]:
    """(interpreter, which environment runs grader code) for `python.environment`; a missing tag means 2025-05-08."""
    current = (sys.executable, f"current ({sys.prefix})")
    if environment == "current":
        return current
    if environment not in ("auto", "image"):
        raise ValueError(f"python.environment must be auto, image or current, got {environment!r}")
    try:
        tag = canonical_tag(image_tag or DEFAULT_TAG)
    except UnknownImageTag:
        if environment == "image":
            raise
        return current
    env = installed(tag, root)
    if env is not None:
        return env.interpreter, f"image {tag} ({env.path})"
    if environment == "image":
        raise ImageNotInstalled(f"python.environment is 'image' but {not_installed(tag, root)}")
    return current


def _real_python(python: str) -> str:
    """The interpreter behind `python`, so a pyenv-style shim never becomes the base of a venv."""
    try:
        found = subprocess.run(
            [python, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        raise ImageInstallError(f"cannot run {python}: {exc.strerror or exc}") from None
    if found.returncode != 0 or not found.stdout.strip():
        raise ImageInstallError(f"cannot run {python}: {found.stderr.strip()}")
    return found.stdout.strip()


def _run(argv: list[str], what: str, out: TextIO) -> None:
    """Run `argv`, streaming its output to `out`; a failure names `what` and ends with the output's last lines."""
    tail: list[str] = []
    pipe = subprocess.PIPE
    with subprocess.Popen(argv, stdout=pipe, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            tail = (tail + [line.rstrip()])[-12:]
    if proc.returncode != 0:
        raise ImageInstallError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _check_pins(python: str, pins: tuple[str, ...]) -> dict[str, Any]:
    """The venv's python version, pin versions and full freeze; raises naming each pin not at exactly its version."""
    names = [pin.split("==")[0] for pin in pins]
    probe = subprocess.run([python, "-I", "-c", _PROBE, *names], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        raise ImageInstallError(f"cannot inspect the new environment: {probe.stderr.strip()}")
    found = json.loads(probe.stdout)
    wrong = [
        f"{pin} (installed: {found['versions'][name] or 'none'})"
        for pin, name in zip(pins, names)
        if found["versions"][name] != pin.split("==", 1)[1]
    ]
    if wrong:
        raise ImageInstallError("packages not installed at their pinned versions: " + ", ".join(wrong))
    return found


def _install_nltk_data(venv: Path, out: TextIO) -> tuple[dict[str, str], list[str]]:
    """§8.5 NLTK data into `<venv>/nltk_data` (on nltk's path via sys.prefix): WordNet from Debian's wordnet-base;
    the other corpora come only from nltk's own download host, which is never used (§8.5: no run-time downloads)."""
    from .wordnet import DEBIAN_WORDNET, layout_debian_wordnet

    placed: dict[str, str] = {}
    try:
        corpus = layout_debian_wordnet(DEBIAN_WORDNET, venv / "nltk_data")
        placed["wordnet"] = f"{corpus.relative_to(venv)} from Debian wordnet-base + wordnet-sense-index"
    except OSError as exc:
        print(f"warning: WordNet not installed: {exc}", file=out)
    missing = [name for name in NLTK_DATA if name not in placed]
    if missing:
        print(
            f"warning: NLTK data not installed: {', '.join(missing)} (no package registry ships it; grader code that "
            f"needs it fails as it would without the data)",
            file=out,
        )
    return placed, missing


def _relocate(staging: Path, final: Path) -> None:
    """Point the venv's scripts (shebangs, activate, pyvenv.cfg) at `final` after the rename; the interpreter itself
    finds its prefix from its own location."""
    old, new = str(staging).encode(), str(final).encode()
    for path in [final / "pyvenv.cfg", *(final / "bin").iterdir()]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data:
            path.write_bytes(data.replace(old, new))


def install(
    tag: str,
    root: str,
    *,
    python: str = sys.executable,
    packages: list[str] | None = None,
    force: bool = False,
    out: TextIO = sys.stderr,
) -> Path:
    """Build `<root>/<tag>`: a venv with the image's pins (or `packages`, recorded as overridden), checked, with a
    manifest; built beside its place and renamed in only on success. A no-op when installed, unless `force`."""
    tag = canonical_tag(tag)
    pins = tuple(packages) if packages is not None else IMAGES[tag]
    if not pins or any("==" not in pin for pin in pins):
        raise ImageInstallError(f"packages must be exact pins name==version, got {list(pins)}")
    base = Path(root)
    final = base / tag
    existing = installed(tag, root)
    if existing is not None and not force:
        print(f"image {tag} is already installed at {final}", file=out)
        return final
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".{tag}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    started = time.monotonic()
    try:
        real = _real_python(python)
        _run([real, "-m", "venv", str(staging)], f"{real} -m venv", out)
        venv_python = str(staging / "bin" / "python")
        _run(
            [venv_python, "-I", "-m", "pip", "install", "--no-input", "--disable-pip-version-check", *pins],
            f"pip install for image {tag}",
            out,
        )
        found = _check_pins(venv_python, pins)
        with_nltk = any(pin.startswith("nltk==") for pin in pins)
        nltk_data, nltk_missing = _install_nltk_data(staging, out) if with_nltk else ({}, list(NLTK_DATA))
        manifest = {
            "tag": tag,
            "pins": list(pins),
            "packages_overridden": packages is not None,
            "installed_versions": found["versions"],
            "python_version": found["python"],
            "base_interpreter": real,
            "interpreter": str(final / "bin" / "python"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "install_seconds": round(time.monotonic() - started, 1),
            "nltk_data": nltk_data,
            "nltk_data_missing": nltk_missing,
            "freeze": found["freeze"],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        retired = base / f".{tag}.old-{os.getpid()}"
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        _relocate(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"installed image {tag} at {final} in {manifest['install_seconds']} s", file=out)
    return final


def _root(args: argparse.Namespace) -> str:
    """`--dir`, else `python.images_dir` of the options in force ($GRADERS_IMAGES_DIR or the graders cache)."""
    if args.dir:
        return str(args.dir)
    from ..options import Options

    return Options().python.images_dir


def _cmd_install(args: argparse.Namespace, out: TextIO) -> int:
    try:
        path = install(args.tag, _root(args), python=args.python, packages=args.package, force=args.force)
    except ImageInstallError as exc:
        print(f"graders image install: {exc}", file=sys.stderr)
        return 1
    print(path, file=out)
    return 0


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    root = _root(args)
    envs = [env for tag in IMAGES if (env := installed(tag, root)) is not None]
    if not envs:
        print(f"no images installed in {root}; run `{install_command(DEFAULT_TAG, root)}`", file=out)
    for env in envs:
        m = env.manifest
        overridden = " (packages overridden)" if m.get("packages_overridden") else ""
        missing = ", ".join(m.get("nltk_data_missing", [])) or "none"
        print(
            f"{env.tag}  {env.path}  python {m.get('python_version')}  {len(m.get('pins', []))} pins{overridden}  "
            f"created {m.get('created')}  nltk data missing: {missing}",
            file=out,
        )
    return 0


def _cmd_path(args: argparse.Namespace, out: TextIO) -> int:
    root = _root(args)
    env = installed(args.tag, root)
    if env is None:
        print(not_installed(canonical_tag(args.tag), root), file=sys.stderr)
        return 1
    print(env.interpreter, file=out)
    return 0


def _checked_tag(func: Any) -> Any:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return int(func(args, out))
        except UnknownImageTag as exc:
            print(f"graders image: {exc}", file=sys.stderr)
            return 2

    return run


def add_cli(image: argparse.ArgumentParser) -> None:
    """Fill in `graders image install|list|path` under the parser the CLI made for `image`."""
    commands = image.add_subparsers(dest="image_command", required=True)
    dir_help = "where images live (default: python.images_dir: $GRADERS_IMAGES_DIR or ~/.cache/graders/images)"

    p = commands.add_parser("install", help="create a venv with the image's exact pins and print its path")
    p.add_argument("tag", help=f"image tag ({', '.join(known_tags())})")
    p.add_argument("--dir", help=dir_help)
    p.add_argument("--python", default=sys.executable, help="interpreter to base the venv on (default: this one)")
    p.add_argument("--force", action="store_true", help="rebuild even when installed")
    p.add_argument(
        "--package", action="append", metavar="SPEC", help="install these name==version pins instead"
    )
    p.set_defaults(func=_checked_tag(_cmd_install))

    p = commands.add_parser("list", help="installed images and their manifests")
    p.add_argument("--dir", help=dir_help)
    p.set_defaults(func=_checked_tag(_cmd_list))

    p = commands.add_parser("path", help="print an installed image's interpreter (exit 1 when not installed)")
    p.add_argument("tag", help=f"image tag ({', '.join(known_tags())})")
    p.add_argument("--dir", help=dir_help)
    p.set_defaults(func=_checked_tag(_cmd_path))
