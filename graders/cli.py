"""The `graders` command: run, validate, batch and options (plus commands grader modules contribute).

Bad input (an unreadable or non-UTF-8 file, invalid JSON, an invalid grader) gives one clear line on stderr and a
non-zero status, never a traceback. Exit codes: 0 success, 1 invalid grader or request (the error envelope is
printed on stdout), 2 unusable input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .engine import CompiledGrader
from .errors import BadRow, GraderValidationError
from .options import OptionError, Options, describe_options, parse_option_assignment
from .response import FLAG_KEYS, GraderRunResponse
from .validation import validate

if TYPE_CHECKING:
    from .batch.layout import Output

PLUGINS: dict[str, tuple[str, str]] = {
    "image": ("graders.resources.images", "local environments with the hosted python grader image's packages (§8.5)"),
    "judge": ("graders.evaluators.model.judge", "a local llama.cpp judge for offline plumbing checks (optional extra)"),
    "serve": ("graders.server.cli", "serve /v1/fine_tuning/alpha/graders/run and /validate (and OpenRLHF's /get_reward) here"),
    "export": ("graders.integrations.export", "write a reward file for TRL, verl or OpenRLHF that loads this grader once"),
    "ui": ("graders.server.cli:add_ui_cli", "open the playground in a browser: edit a grader, run it, explore rows and batch outputs"),
}
"""Sub-commands other modules fill in with `add_cli(parser)` (or the function named after a colon), by name: a
module is imported only when its sub-command runs, so `graders run` never pays for httpx or the image tooling."""


class InputError(Exception):
    """Input the command cannot use; the message is the whole story."""


def _read_text(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path!r}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path!r}: is a directory") from None
    except PermissionError:
        raise InputError(f"{what} {path!r}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path!r} is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{what} {path!r}: {exc.strerror or exc}") from None


def _parse_json(text: str, what: str) -> Any:
    """Strict JSON (§5.7: no NaN, no lone surrogates, nesting within the limit), or one line saying why not."""
    from ._json import JSONTextError, loads

    try:
        return loads(text)
    except JSONTextError as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None


def _argument_text(value: str, what: str) -> str:
    """A text argument as typed: bytes that are not UTF-8 reach Python as lone surrogates, refused here (§5.7)."""
    from ._json import text_problem

    problem = text_problem(value)
    if problem is not None:
        raise InputError(f"{what} {problem}")
    return value


def _json_arg(value: str, what: str) -> Any:
    """A JSON value given inline, or as `@file`."""
    if value.startswith("@"):
        return _parse_json(_read_text(value[1:], what), f"{what} file {value[1:]!r}")
    return _parse_json(_argument_text(value, what), what)


def _load_grader(path: str) -> Any:
    grader = _parse_json(_read_text(path, "grader file"), f"grader file {path!r}")
    if not isinstance(grader, dict):
        raise InputError(f"grader file {path!r} must hold a JSON object, got {type(grader).__name__}")
    return grader


def _options(args: argparse.Namespace, *, explain: bool = False) -> Options:
    return option_values(args, explain=explain)[1]


def option_values(args: argparse.Namespace, *, explain: bool = False) -> tuple[dict[str, Any], Options]:
    """The options given with `-o` / `--options-file` as `{dotted: value}`, and the Options they make."""
    values: dict[str, Any] = {}
    if getattr(args, "options_file", None):
        loaded = _json_arg("@" + args.options_file, "options")
        if not isinstance(loaded, dict):
            raise InputError("the options file must hold a JSON object of {\"dotted.name\": value}")
        values.update(loaded)
    raw: dict[str, str] = {}
    for assignment in getattr(args, "option", None) or []:
        try:
            name, value = parse_option_assignment(assignment)
        except OptionError as exc:
            raise InputError(str(exc)) from None
        values[name] = value
        raw[name] = assignment.partition("=")[2]
    if explain:
        values["explain"] = True
    try:
        return values, Options().with_values(values)
    except (OptionError, ValueError) as exc:
        # `-o formula.log_base=10` reads 10 as a number; such values are retried as the text typed.
        as_text = {**values, **raw}
        if as_text == values:
            raise InputError(str(exc)) from None
        try:
            return as_text, Options().with_values(as_text)
        except (OptionError, ValueError):
            raise InputError(str(exc)) from None


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def explain(response: GraderRunResponse) -> str:
    """A person's view of one response: reward, rendered templates, sub-scores and every error with details."""
    lines = [f"{response.name} ({response.type}): reward {response.reward!r}"]
    lines += _explain_details(response.details, "  ")
    errors = response.errors
    flags = [k for k in FLAG_KEYS if errors.get(k)]
    if flags:
        lines.append("  errors:")
        for flag in flags:
            lines.append(f"    {flag}")
        text = response.details.get("error")
        if text:
            lines += [f"      {line}" for line in str(text).splitlines()]
    if response.outcome.usage:
        lines.append(f"  token usage: {json.dumps(response.model_grader_token_usage_per_model)}")
    lines.append(f"  execution time: {response.execution_time * 1000:.3f} ms")
    return "\n".join(lines)


def _explain_details(details: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in details.items():
        if key in ("error", "traceback"):
            continue
        if key == "formula" and isinstance(value, dict):
            variables = ", ".join(f"{k} = {v!r}" for k, v in (value.get("variables") or {}).items())
            lines.append(f"{indent}calculate_output: {value.get('calculate_output')}")
            lines.append(f"{indent}  with {variables}: {value.get('result')!r}")
        elif key == "sub_graders" and isinstance(value, dict):
            lines.append(f"{indent}sub-graders:")
            for sub_key, sub in value.items():
                flags = [k for k in FLAG_KEYS if (sub.get("errors") or {}).get(k)]
                state = f" [{', '.join(flags)}]" if flags else ""
                lines.append(f"{indent}  {sub_key}: {sub.get('reward')!r}{state}")
                rest = {k: v for k, v in sub.items() if k not in ("reward", "errors")}
                lines += _explain_details(rest, indent + "    ")
                if flags and sub.get("error"):
                    lines += [f"{indent}    error: {line}" for line in str(sub["error"]).splitlines()]
        elif isinstance(value, str):
            shown = value if len(value) <= 500 else value[:500] + f"… ({len(value)} chars)"
            lines.append(f"{indent}{key}: {json.dumps(shown, ensure_ascii=False)}")
        else:
            lines.append(f"{indent}{key}: {json.dumps(value, ensure_ascii=False, default=repr)}")
    return lines


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    grader = _load_grader(args.grader)
    options = _options(args, explain=args.explain)
    if args.sample is not None:
        model_sample, sample = _argument_text(args.sample, "--sample"), None
    elif args.sample_file is not None:
        model_sample, sample = _read_text(args.sample_file, "sample file"), None
    else:
        model_sample, sample = None, _json_arg(args.sample_json, "--sample-json")
    item = _json_arg(args.item, "--item") if args.item is not None else None
    if sample is not None:
        from .namespaces import unknown_sample_keys

        for key in unknown_sample_keys(sample):
            print(f"graders: warning: --sample-json has a key {key!r} that no hosted sample has (§5.4); it is passed on, "
                  "but a typo of one of the sample's keys leaves that key derived from the others", file=sys.stderr)
    try:
        with CompiledGrader(grader, options) as compiled:
            response = compiled.run(model_sample, item, sample=sample)
    except GraderValidationError as exc:
        _print_json(exc.envelope(), out)
        print(f"graders: {exc}", file=sys.stderr)
        return 1
    if args.explain:
        out.write(explain(response) + "\n")
    else:
        _print_json(response.model_dump(include_details=args.details), out)
    return 0


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    grader = _load_grader(args.grader)
    try:
        result = validate(grader, _options(args), context=args.context)
    except GraderValidationError as exc:
        _print_json(exc.envelope(), out)
        return 1
    _print_json(result.model_dump(), out)
    for warning in result.warnings:
        print(f"graders: warning: {warning}", file=sys.stderr)
    return 0


def _rows(path: str, what: str, *, strict: bool = True) -> Iterator[Any]:
    """The JSONL cases or rows of a parity run. In a cases file a line that is not strict JSON is unusable input
    (exit 2), since a suite with a line missing would report agreement on what is left; in the rows to record
    (`strict=False`) it is a `BadRow`, recorded as not sent."""
    from ._json import JSONTextError, loads

    handle = sys.stdin.buffer if path == "-" else None
    try:
        handle = handle or open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{what} {path!r}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield loads(line)
            except JSONTextError as exc:
                where = f" at column {exc.colno}" if exc.colno else ""
                reason = f"line {number} is not valid JSON: {exc.msg}{where}"
                if not strict:
                    yield BadRow(reason)
                    continue
                raise InputError(f"{what} {path!r}: {reason}") from None


def _batch_job(args: argparse.Namespace, grader: Any, data: str, layout: Any) -> Any:
    from .batch import BatchJob

    return BatchJob(
        grader=grader, data=data, out=args.out, options=_options(args), layout=layout, samples=getattr(args, "samples", None),
        join=getattr(args, "join", "index"), workers=args.workers, force=args.force,
        progress="quiet" if args.quiet else args.progress, summary_path=args.summary, report_path=args.report,
    )


def _binary(out: TextIO) -> Any:
    """Where output lines go without --out: stdout's bytes, or a text stream's (tests pass a StringIO)."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        return buffer
    return _TextSink(out)


class _TextSink:
    """A bytes view of a text stream with a file descriptor of its own (a pipe drained into the stream)."""

    def __init__(self, out: TextIO) -> None:
        import os
        import threading

        self._read, self._write = os.pipe()
        self._out = out
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        import os

        chunks = []
        while True:
            data = os.read(self._read, 1 << 16)
            if not data:
                break
            chunks.append(data)
        os.close(self._read)
        self._out.write(b"".join(chunks).decode("utf-8", "surrogateescape"))

    def fileno(self) -> int:
        return self._write

    def close(self) -> None:
        import os

        os.close(self._write)
        self._thread.join()


def _layout(args: argparse.Namespace, **extra: Any) -> Any:
    from .batch import Layout

    output: Output = "compact" if args.compact else "with_input" if args.with_input else "wire"
    item_from = tuple(c.strip() for c in args.item_from.split(",") if c.strip()) if getattr(args, "item_from", None) else ()
    return Layout(sample_field=getattr(args, "sample_field", None), item_field=getattr(args, "item_field", None), item_from=item_from,
                  rft=bool(getattr(args, "samples", None)), id_field=args.id_field, output=output, details=args.details, **extra)


def cmd_batch(args: argparse.Namespace, out: TextIO) -> int:
    grader = _load_grader(args.grader)
    job = _batch_job(args, grader, args.data, _layout(args))
    if args.ray or args.ray_address:
        try:
            from .integrations.ray import RayBatch
        except ImportError as exc:
            raise InputError(f"--ray needs Ray: pip install 'graders[ray]' ({exc})") from None
        job.executor = RayBatch(args.ray_address, args.ray_cpus)
    return _run_job(job, out)


def _run_job(job: Any, out: TextIO) -> int:
    from .batch import run_batch
    from .batch.pipeline import BatchError
    from .batch.resume import ResumeError

    sink = None if job.out else _binary(out)
    try:
        run_batch(job, stdout=sink)
    except GraderValidationError as exc:
        _print_json(exc.envelope(), out)
        print(f"graders: {exc}", file=sys.stderr)
        return 1
    except (ResumeError, BatchError, ValueError) as exc:
        raise InputError(str(exc)) from None
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename!r}: no such file") from None
    except IsADirectoryError as exc:
        raise InputError(f"{exc.filename!r}: is a directory") from None
    finally:
        if isinstance(sink, _TextSink):
            sink.close()
    return 0


def cmd_rescore(args: argparse.Namespace, out: TextIO) -> int:
    """Grade the rows of a `--with-input` output again with another grader, without the original files."""
    from .batch import Layout
    from .batch.resume import read_meta

    grader = _load_grader(args.grader)
    meta = read_meta(args.previous) or {}
    before = Layout.from_json(meta["layout"]) if isinstance(meta.get("layout"), dict) else Layout(output="with_input")
    if before.output != "with_input":
        raise InputError(f"{args.previous!r} was not written with --with-input, so it does not hold the rows' input")
    output: Output = "compact" if args.compact else "wire" if args.wire else "with_input"
    layout = Layout(sample_field=before.sample_field, item_field=before.item_field, item_from=before.item_from, rft=before.rft,
                    id_field=before.id_field, output=output, details=args.details, unwrap=True)
    job = _batch_job(args, grader, args.previous, layout)
    return _run_job(job, out)


def _report(cases: Iterable[Any], args: argparse.Namespace, out: TextIO) -> int:
    from .parity import check_cases

    report = check_cases(cases, _options(args), tol=args.tol, flip=not args.no_flip)
    if args.json:
        _print_json(report.as_dict(), out)
    else:
        out.write(report.summary() + "\n")
    return 0 if report.ok else 1


def cmd_parity(args: argparse.Namespace, out: TextIO) -> int:
    return _report(_rows(args.cases, "cases file"), args, out)


def cmd_parity_record(args: argparse.Namespace, out: TextIO) -> int:
    """Send every row to a live endpoint, write request + answer per line to --out, then compare locally."""
    import asyncio
    import os

    from .parity import record_cases
    from .remote import GradersClient, public_url

    grader = _load_grader(args.grader)
    api_key = os.environ.get(args.api_key_env) or None
    rows = list(_rows(args.data, "data file", strict=False))

    async def record() -> list[dict[str, Any]]:
        client = GradersClient(
            args.base_url, api_key, timeout_s=args.timeout, max_retries=args.max_retries, concurrency=args.concurrency
        )
        cases: list[dict[str, Any]] = []
        try:
            with open(args.out, "w", encoding="utf-8") as sink:
                async for case in record_cases(grader, rows, client, source=public_url(args.base_url)):
                    sink.write(json.dumps(case, ensure_ascii=False) + "\n")
                    cases.append(case)
        finally:
            await client.aclose()
        return cases

    try:
        cases = asyncio.run(record())
    except OSError as exc:
        raise InputError(f"cannot write {args.out!r}: {exc.strerror or exc}") from None
    unrecorded = sum(1 for c in cases if "not_recorded" in c)
    print(f"graders: recorded {len(cases) - unrecorded} of {len(cases)} rows from {public_url(args.base_url)} into {args.out}", file=sys.stderr)
    return _report(cases, args, out)


def cmd_options(args: argparse.Namespace, out: TextIO) -> int:
    options = _options(args)
    if not args.markdown:
        _print_json(options.flat(), out)
        return 0
    out.write("| option | value | what it decides |\n| --- | --- | --- |\n")
    for name, value, description in describe_options(options):
        text = " ".join(description.split()).replace("|", "\\|")
        out.write(f"| `{name}` | `{json.dumps(value)}` | {text} |\n")
    return 0


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="set an option, e.g. -o multi.sub_error_policy=fail_whole")
    p.add_argument("--options-file", metavar="FILE", help="a JSON object of options by dotted name")


def _add_batch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="write lines here (resumable) instead of stdout")
    p.add_argument("--workers", type=int, metavar="N", help="shard processes (default: option batch.workers, else the cores this process may use)")
    p.add_argument("--id-field", metavar="PATH", help="dotted path of each row's id: resume by id, and the id in --compact/--with-input lines")
    p.add_argument("--force", action="store_true", help="start the output over instead of continuing it")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--compact", action="store_true", help="lines of row, reward, set flags and sub_rewards")
    shape.add_argument("--with-input", action="store_true", help='lines of {"row", "id", "input", "response"} (for graders rescore)')
    p.add_argument("--details", action="store_true", help="include the local trace in each line")
    p.add_argument("--progress", choices=["auto", "bar", "lines"], default="auto", help="a live bar on a terminal, plain lines otherwise")
    p.add_argument("--quiet", action="store_true", help="no progress and no printed summary")
    p.add_argument("--summary", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    _add_option_flags(p)


def _add_report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tol", type=float, default=1e-6, help="absolute tolerance for rewards (default 1e-6)")
    p.add_argument("--json", action="store_true", help="a JSON report with the options in force")
    p.add_argument("--no-flip", action="store_true", help="do not rerun disagreements with candidate options flipped")
    _add_option_flags(p)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; the plug-in named by `command` (the sub-command about to run) is imported to fill in its
    own arguments, the others are listed by name and help only."""
    parser = argparse.ArgumentParser(prog="graders", description="Run OpenAI-style graders locally.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="grade one sample and print the GraderRunResponse")
    p.add_argument("grader", help="grader JSON file ('-' for stdin)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sample", help="the model sample text (model_sample)")
    src.add_argument("--sample-file", help="read model_sample from a file, verbatim")
    src.add_argument("--sample-json", help="a structured sample object, inline JSON or @file")
    p.add_argument("--item", help="the item, inline JSON or @file")
    p.add_argument("--explain", action="store_true", help="print rendered templates, sub-scores and errors for a person")
    p.add_argument("--details", action="store_true", help="add the local trace under 'details' to the JSON")
    _add_option_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="validate a grader config like /validate")
    p.add_argument("grader", help="grader JSON file ('-' for stdin)")
    p.add_argument("--context", choices=["run", "evals"], default="run", help="where the grader is used (§4)")
    _add_option_flags(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("batch", help="grade a JSONL file of rows on every core, one line per row, resumable")
    p.add_argument("grader", help="grader JSON file")
    p.add_argument("data", help="JSONL (or .parquet) rows with model_sample (or sample) and item ('-' for stdin); RFT training rows with --samples")
    p.add_argument("--samples", metavar="FILE", help="RFT: a JSONL of samples joined with the training rows in DATA (§5.3)")
    p.add_argument("--join", choices=["index", "id"], default="index", help="join --samples by row index or by --id-field")
    p.add_argument("--sample-field", metavar="PATH", help="dotted path of the sample in each row (text, or a structured sample)")
    p.add_argument("--item-field", metavar="PATH", help="dotted path of the item in each row (default: the row itself)")
    p.add_argument("--item-from", metavar="COL,…", help="build the item from these (dotted) columns of each row")
    p.add_argument("--ray", action="store_true", help="grade on a Ray cluster (RAY_ADDRESS, else a new local one); --workers is then the actor count")
    p.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster to grade on (implies --ray)")
    p.add_argument("--ray-cpus", type=float, default=1.0, metavar="C", help="CPUs each Ray actor takes (default 1)")
    _add_batch_flags(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("rescore", help="grade the rows of a --with-input batch output again with another grader")
    p.add_argument("previous", help="a JSONL written by graders batch --with-input")
    p.add_argument("grader", help="the new grader JSON file")
    p.add_argument("--wire", action="store_true", help="write plain wire responses instead of --with-input lines")
    _add_batch_flags(p)
    p.set_defaults(func=cmd_rescore)

    parity = sub.add_parser(
        "parity", help="record /run answers from a live endpoint, or replay recorded cases locally and explain every difference"
    )
    modes = parity.add_subparsers(dest="parity_command", required=True)
    p = modes.add_parser("replay", help="run recorded cases locally (offline) and explain every difference")
    p.add_argument("cases", help="JSONL of {grader, model_sample|sample, item, response | status+error}")
    _add_report_flags(p)
    p.set_defaults(func=cmd_parity)
    p = modes.add_parser("record", help="send each row to a live graders endpoint, record request and answer, compare locally")
    p.add_argument("grader", help="grader JSON file")
    p.add_argument("data", help="JSONL rows with model_sample (or sample) and item")
    p.add_argument("--base-url", required=True, help="the endpoint's base URL, e.g. https://api.openai.com/v1 or http://127.0.0.1:8765/v1")
    p.add_argument("--out", required=True, help="the recorded cases (JSONL); the API key is never written")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME", help="environment variable holding the key (default OPENAI_API_KEY)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument("--max-retries", type=int, default=4, help="retries after connect errors, timeouts, 429 and 5xx (default 4)")
    _add_report_flags(p)
    p.set_defaults(func=cmd_parity_record)


    p = sub.add_parser("options", help="list every option and its value")
    p.add_argument("--markdown", action="store_true", help="a Markdown table with what each option decides")
    _add_option_flags(p)
    p.set_defaults(func=cmd_options)

    for name, (target, help_text) in PLUGINS.items():
        plugin = sub.add_parser(name, help=help_text)
        if name == command:
            module_name, _, function = target.partition(":")
            try:
                getattr(importlib.import_module(module_name), function or "add_cli")(plugin)
            except ImportError as exc:
                plugin.set_defaults(func=_unavailable(name, exc))
    return parser


def _unavailable(name: str, exc: ImportError) -> Any:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        raise InputError(f"'{name}' is not available here: {exc}")

    return run


def _legacy_parity(argv: list[str]) -> list[str]:
    """`graders parity CASES.jsonl` (the form before record/replay existed) means `graders parity replay`."""
    if len(argv) >= 2 and argv[0] == "parity" and argv[1] not in ("record", "replay", "-h", "--help"):
        return ["parity", "replay", *argv[1:]]
    return argv


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    argv = _legacy_parity(list(sys.argv[1:] if argv is None else argv))
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args, out or sys.stdout))
    except (InputError, OptionError) as exc:
        print(f"graders: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`graders batch … | head -1`): stop quietly, as a command killed by SIGPIPE does,
        # and point stdout at /dev/null so the interpreter's last flush does not complain either.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f"{exc.filename!r}: " if exc.filename else ""
        print(f"graders: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m graders.cli`: run the imported module's `main`, so this file's classes (InputError) are the ones the
    # plug-in commands raise, not a second copy made for `__main__`.
    from graders.cli import main as _main

    raise SystemExit(_main())
