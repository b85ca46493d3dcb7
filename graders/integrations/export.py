"""`graders export {trl,verl,openrlhf} GRADER.json --out reward.py`: a reward file a trainer's config points at.

The file embeds the grader JSON (and any `-o` options and mapping flags) instead of naming the grader's path: it is
then all a trainer needs besides the graders package, on every node and Ray worker that loads it (verl loads the
file by path in each reward worker, OpenRLHF in each rollout actor, wherever their working directory is), and the
config that trained a model stays with the run, checked by its SHA-256. The grader is validated before the file
is written, and the file compiles it once, when it is loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

TRAINERS: dict[str, dict[str, str]] = {
    "trl": {
        "module": "graders.integrations.trl",
        "name": "reward_func",
        "use": "GRPOTrainer(..., reward_funcs=[reward_func]) after `from reward import reward_func`, or\n"
        "    trl grpo --reward_funcs reward.reward_func   (run where reward.py is importable)",
    },
    "verl": {
        "module": "graders.integrations.verl",
        "name": "compute_score",
        "use": "reward.custom_reward_function.path={path} reward.custom_reward_function.name=compute_score\n"
        "    (the batch reward manager calls the same function with data_sources=, solution_strs=, ...)",
    },
    "openrlhf": {
        "module": "graders.integrations.openrlhf",
        "name": "reward_func",
        "use": "--reward.remote_url {path}   (OpenRLHF before 0.10.2: --remote_rm_url {path})",
    },
}


def _literal(json_text: str) -> str:
    """A JSON object's text as a triple-quoted Python string literal (backslashes and quotes escaped), readable in
    the file; it ends with `}`, so never with a quote."""
    return '"""' + json_text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'


def _docstring_text(text: str) -> str:
    """`text` made inert inside the file's triple-quoted docstring: a grader's name or an output path is not ours
    to trust, and three double quotes in one would otherwise end the docstring and put code after it."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(trainer: str, grader: dict[str, Any], options: dict[str, Any], mapping: dict[str, Any], path: str) -> str:
    """The reward file's source for `trainer`."""
    spec = TRAINERS[trainer]
    grader_json = json.dumps(grader, indent=2, ensure_ascii=False)
    digest = hashlib.sha256(json.dumps(grader, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    use = _docstring_text(spec["use"].format(path=path))
    name = _docstring_text(repr(grader.get("name") or "(unnamed)"))
    return f'''"""{trainer} reward for the grader {name}, written by `graders export {trainer}`.

Use:
    {use}

The grader is embedded below (sha256 of its canonical JSON: {digest}), so this file needs only the graders package.
It is compiled once, when this file is loaded.
"""

import json

from {spec["module"]} import make_reward

GRADER = json.loads({_literal(grader_json)})
OPTIONS = {options!r}
MAPPING = {mapping!r}

{spec["name"]} = make_reward(GRADER, options=OPTIONS or None, **MAPPING)
'''


def _item_spec(values: list[str] | None) -> Any:
    """`--item PATH` (the whole item) or repeated `--item KEY=PATH`."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    spec: dict[str, str] = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise ValueError(f"--item {value!r}: give one PATH, or KEY=PATH for each item key")
        spec[key] = path
    return spec


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from ..cli import InputError, _load_grader, _print_json, option_values
    from ..errors import GraderValidationError

    grader = _load_grader(args.grader)
    overrides, _ = option_values(args)
    mapping: dict[str, Any] = {}
    try:
        item = _item_spec(args.item)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.sample:
        mapping["sample"] = args.sample
    if item is not None:
        mapping["item"] = item
    if args.error_reward is not None:
        if args.trainer == "trl":
            raise InputError("--error-reward does not apply to TRL: a failed grade is None there (no score)")
        mapping["error_reward"] = args.error_reward
    target = Path(args.out)
    source = render(args.trainer, grader, overrides, mapping, str(target.resolve()))
    module = TRAINERS[args.trainer]["module"]
    try:
        __import__(module)
        factory = sys.modules[module].make_reward
        reward = factory(grader, options=overrides or None, **mapping)
    except GraderValidationError as exc:
        _print_json(exc.envelope(), out)
        print(f"graders: {exc}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from None
    close = getattr(reward, "close", None)
    if close is not None:
        close()
    try:
        target.write_text(source, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {args.out!r}: {exc.strerror or exc}") from None
    print(f"graders: wrote {args.out}; use it with: {TRAINERS[args.trainer]['use'].format(path=target.resolve())}", file=sys.stderr)
    return 0


def add_cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trainer", choices=sorted(TRAINERS), help="the trainer whose reward convention the file follows")
    parser.add_argument("grader", help="grader JSON file")
    parser.add_argument("--out", required=True, help="the reward file to write (e.g. reward.py)")
    parser.add_argument("--sample", metavar="PATH", help="where each sample comes from (default: the trainer's completion)")
    parser.add_argument("--item", action="append", metavar="PATH|KEY=PATH", help="the item: one PATH, or KEY=PATH per item key (repeat)")
    parser.add_argument("--error-reward", type=float, metavar="X", help="reward of a failed grade for verl and OpenRLHF (default 0.0)")
    parser.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="an option the file compiles the grader with")
    parser.add_argument("--options-file", metavar="FILE", help="a JSON object of options by dotted name")
    parser.set_defaults(func=cmd_export)
