"""Config validation (§12): the §12.2 checks in order, stopping at the first failure, with OpenAI's envelope.

`parse_grader` is what `/run` and `/validate` both use; it returns the typed config (`schema`) or raises
`GraderValidationError`, whose `envelope()` is the HTTP 400 body of §12.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .errors import GraderValidationError, invalid_type, invalid_value, missing
from .errors import join_path as _join
from .options import Options
from .response import GraderValidateResponse
from .schema import (
    EVALS_TYPES,
    GRADER_TYPES,
    MULTI_SUB_TYPES,
    TOP_LEVEL_TYPES,
    GraderConfig,
    InputImage,
    InputText,
    LabelModelGrader,
    MultiGrader,
    OutputText,
    PythonGrader,
    Config,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
    parse_config,
)
from .templates import compile_template

if TYPE_CHECKING:
    import ast

Context = Literal["run", "evals"]
"""Where a grader is used (§4): a `/run` request, or an Evals testing criterion (which also allows `label_model`)."""

_NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# §9.4: grader models listed by the guides (U35 checks against these when switched on).
GUIDE_MODELS: tuple[str, ...] = (
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "o1-2024-12-17",
    "o3-mini-2025-01-31",
    "o3-2025-04-16",
    "o4-mini-2025-04-16",
)
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def generate_name() -> str:
    """§3.4: `grader-` plus 12 characters from [A-Za-z0-9], new on every request."""
    import secrets

    return "grader-" + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(12))


def _quote_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# --- check 1: where each type is allowed (§4), walking into multi maps --------------------------------------------


def _check_types(data: Any, path: str, allowed: tuple[str, ...], context: str) -> None:
    if not isinstance(data, Mapping):
        raise invalid_type(path or "grader", "an object", data)
    if "type" not in data:
        raise missing(_join(path, "type"))
    grader_type = data["type"]
    if not isinstance(grader_type, str):
        raise invalid_type(_join(path, "type"), "a string", grader_type)
    if grader_type not in GRADER_TYPES:
        raise invalid_value(
            _join(path, "type"), f"'{grader_type}' is not a grader type; expected one of {_quote_list(allowed)}."
        )
    if grader_type not in allowed:
        where = {"run": "at the top level of a grader", "evals": "as an Evals testing criterion", "multi": "inside 'multi'"}
        hint = " ('label_model' is allowed only inside 'multi' and in Evals)" if grader_type == "label_model" else ""
        raise invalid_value(
            _join(path, "type"),
            f"'{grader_type}' is not allowed {where[context]}{hint}; expected one of {_quote_list(allowed)}.",
        )
    if grader_type == "multi":
        graders = data.get("graders")
        if graders is None:
            return  # reported by the schema check as a missing parameter
        gpath = _join(path, "graders")
        if not isinstance(graders, Mapping):
            raise invalid_type(gpath, "an object", graders)
        for key, sub in graders.items():
            if not isinstance(sub, Mapping):
                raise invalid_type(_join(gpath, key), "an object", sub)
        for key, sub in graders.items():
            _check_types(sub, _join(gpath, key), MULTI_SUB_TYPES, "multi")


# --- checks 4-10 over every grader of the tree --------------------------------------------------------------------


def _walk(config: GraderConfig, path: str = "") -> Iterator[tuple[str, GraderConfig]]:
    yield path, config
    if isinstance(config, MultiGrader):
        for key, sub in config.graders.items():
            yield from _walk(sub, _join(path, _join("graders", key)))


def _check_ranges(config: GraderConfig, path: str) -> None:
    if isinstance(config, ScoreModelGrader) and config.range is not None:
        rpath = _join(path, "range")
        if len(config.range) != 2:
            raise invalid_value(rpath, f"expected exactly 2 numbers [min, max], got {len(config.range)}.")
        if not config.range[0] < config.range[1]:
            raise invalid_value(rpath, f"min must be less than max, got [{config.range[0]}, {config.range[1]}].")


def _check_labels(config: GraderConfig, path: str, options: Options) -> None:
    if not isinstance(config, LabelModelGrader):
        return
    if not config.labels:
        raise invalid_value(_join(path, "labels"), "must contain at least one label.")
    if options.validate.label_subset_check:
        known = set(config.labels)
        for i, label in enumerate(config.passing_labels):
            if label not in known:
                raise invalid_value(
                    _join(_join(path, "passing_labels"), i), f"'{label}' is not one of 'labels' ({_quote_list(config.labels)})."
                )


def _check_multi(config: GraderConfig, path: str, options: Options) -> None:
    if not isinstance(config, MultiGrader):
        return
    from .formula import IDENTIFIER, FormulaParseError, parse_formula

    gpath = _join(path, "graders")
    if not config.graders:
        raise invalid_value(gpath, "must contain at least one grader.")
    for key in config.graders:
        if not IDENTIFIER.fullmatch(key):
            raise invalid_value(
                _join(gpath, key),
                "a key of 'graders' is a variable of 'calculate_output' and must match [A-Za-z_][A-Za-z0-9_]*.",
            )
    try:
        parse_formula(config.calculate_output, options.formula, frozenset(config.graders))
    except FormulaParseError as exc:
        raise invalid_value(_join(path, "calculate_output"), f"{exc}.") from None


def _check_python_limits(config: GraderConfig, path: str, options: Options) -> None:
    if not isinstance(config, PythonGrader):
        return
    size = len(config.source.encode("utf-8", "surrogatepass"))
    limit = options.python.max_source_bytes
    if size > limit:
        raise invalid_value(_join(path, "source"), f"the source is {size} bytes; it must be at most {limit} bytes.")
    if config.image_tag is not None and config.image_tag not in options.python.image_tags:
        raise invalid_value(
            _join(path, "image_tag"),
            f"'{config.image_tag}' is not a known image; expected one of {_quote_list(options.python.image_tags)}.",
        )


def python_source_problem(source: str) -> str | None:
    """U47: why `source` cannot be a python grader (syntax, no two-argument `grade`), or None. Never executes it."""
    import ast

    try:
        tree = ast.parse(source, "<grader>")
    except SyntaxError as exc:
        return f"the source does not compile: {exc.msg} (line {exc.lineno})."
    except ValueError as exc:  # e.g. NUL bytes
        return f"the source does not compile: {exc}."
    defined: ast.stmt | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "grade":
            defined = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.ImportFrom, ast.Import, ast.ClassDef)):
            names = _bound_names(node)
            if "grade" in names:
                defined = node
    if defined is None:
        return "the source must define a function grade(sample, item)."
    if isinstance(defined, ast.AsyncFunctionDef):
        return "grade must be a plain function, not 'async def'."
    if isinstance(defined, ast.FunctionDef):
        args = defined.args
        positional = len(args.posonlyargs) + len(args.args)
        required = positional - len(args.defaults)
        required_kwonly = sum(1 for d in args.kw_defaults if d is None)
        if required > 2 or (positional < 2 and args.vararg is None) or required_kwonly:
            return "grade must take exactly two positional arguments: grade(sample, item)."
    return None


def _bound_names(node: ast.stmt) -> set[str]:
    import ast

    if isinstance(node, ast.ClassDef):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return set()
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _check_python_source(config: GraderConfig, path: str) -> None:
    if isinstance(config, PythonGrader):
        problem = python_source_problem(config.source)
        if problem:
            raise invalid_value(_join(path, "source"), problem)


def templated_fields(config: GraderConfig) -> Iterator[tuple[str, str]]:
    """(relative path, template text) for every templated field of one grader (§5.2)."""
    if isinstance(config, (StringCheckGrader, TextSimilarityGrader)):
        yield "input", config.input
        yield "reference", config.reference
    elif isinstance(config, (ScoreModelGrader, LabelModelGrader)):
        for i, message in enumerate(config.input):
            base = f"input[{i}].content"
            content = message.content
            items = content if isinstance(content, list) else [content]
            for j, part in enumerate(items):
                ppath = f"{base}[{j}]" if isinstance(content, list) else base
                if isinstance(part, str):
                    yield ppath, part
                elif isinstance(part, (InputText, OutputText)):
                    yield f"{ppath}.text", part.text
                elif isinstance(part, InputImage):
                    yield f"{ppath}.image_url", part.image_url
                else:
                    yield f"{ppath}.input_audio.data", part.input_audio.data


def _check_templates(config: GraderConfig, path: str, options: Options) -> None:
    for field, text in templated_fields(config):
        problems = compile_template(text, options.template).problems
        if problems:
            raise invalid_value(_join(path, field), f"{problems[0]}.")


def _unknown_fields(model: Config, path: str) -> Iterator[str]:
    for extra in model.extra:
        yield _join(path, extra)
    for name in model.field_names():
        value = getattr(model, name)
        children: Iterable[tuple[str | int | None, Any]] = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else [(None, value)]
        )
        for key, child in children:
            if isinstance(child, Config):
                sub = _join(path, name) if key is None else _join(_join(path, name), key)
                yield from _unknown_fields(child, sub)


def _check_strict(config: GraderConfig, path: str, options: Options, context: Context) -> None:
    v = options.validate
    if v.unknown_fields == "reject":
        for where in _unknown_fields(config, path):
            raise GraderValidationError(f"Unknown parameter: '{where}'.", where, "unknown_parameter")
    if isinstance(config, TextSimilarityGrader):
        if (
            context != "evals"
            and config.pass_threshold is not None
            and options.text_similarity.pass_threshold_outside_evals == "reject"
        ):
            raise invalid_value(_join(path, "pass_threshold"), "'pass_threshold' is only used in Evals.")
        if v.cosine_evals_only and context != "evals" and config.evaluation_metric == "cosine":
            raise invalid_value(_join(path, "evaluation_metric"), "'cosine' is only available in Evals.")
    if isinstance(config, LabelModelGrader) and config.sampling_params is not None:
        if options.label_model.sampling_params == "reject":
            raise invalid_value(_join(path, "sampling_params"), "'sampling_params' is not supported by label_model.")
    if isinstance(config, (ScoreModelGrader, LabelModelGrader)):
        if v.model_allow_list and config.model not in GUIDE_MODELS:
            raise invalid_value(_join(path, "model"), f"'{config.model}' is not a supported grader model.")
        if v.strict_model_params:
            _check_model_params(config, path)


def _check_model_params(config: ScoreModelGrader | LabelModelGrader, path: str) -> None:
    params = config.sampling_params
    if params is None:
        return
    raw = params if isinstance(params, dict) else params.dump(exclude_none=True)
    reasoning = config.model.startswith(_REASONING_PREFIXES)
    if reasoning and raw.get("temperature") not in (None, 1, 1.0):
        raise invalid_value(
            _join(path, "sampling_params.temperature"), f"'{config.model}' does not support a custom temperature."
        )
    if not reasoning and raw.get("reasoning_effort") is not None:
        raise invalid_value(
            _join(path, "sampling_params.reasoning_effort"), f"'{config.model}' does not support reasoning_effort."
        )


def _check_evals(config: GraderConfig, context: Context) -> None:
    if context == "evals" and isinstance(config, TextSimilarityGrader) and config.pass_threshold is None:
        raise missing("pass_threshold")


# --- entry points ---------------------------------------------------------------------------------------------------


def _preprocess(data: Mapping[str, Any], options: Options) -> dict[str, Any]:
    """U17: rewrite the `neq` alias before the enum check, when accepted."""
    out = dict(data)
    if options.string_check.accept_neq_alias and out.get("type") == "string_check" and out.get("operation") == "neq":
        out["operation"] = "ne"
    if out.get("type") == "multi" and isinstance(out.get("graders"), Mapping):
        out["graders"] = {k: _preprocess(v, options) for k, v in out["graders"].items()}
    return out


def _check_json(grader: Any) -> None:
    """Before the checks that walk the whole config: it must be JSON the engine can hold (§5.7), so a field nested thousands
    of levels deep, a NaN or a lone surrogate is a 400 naming it rather than a crash deep inside."""
    from ._json import value_problem

    found = value_problem(grader, "") if isinstance(grader, Mapping) else None
    if found is not None:
        path, problem = found
        raise invalid_value(path or "grader", f"{problem.removeprefix('is ')}.")


def parse_grader(grader: Any, options: Options | None = None, *, context: Context = "run") -> GraderConfig:
    """Validate a grader config (§12.2 checks 1-10, first failure wins) and return its typed form."""
    options = options or Options()
    allowed = TOP_LEVEL_TYPES if context == "run" else EVALS_TYPES
    _check_types(grader, "", allowed, context)  # 1 (stops at the first nested multi, so it never goes deep)
    _check_json(grader)
    data = _preprocess(grader, options)
    config = parse_config(data)  # 2, 3
    tree = list(_walk(config))
    _check_evals(config, context)
    for path, node in tree:
        _check_ranges(node, path)  # 4 (max_completions_tokens >= 1 is a schema bound)
    for path, node in tree:
        _check_labels(node, path, options)  # 5
    for path, node in tree:
        _check_multi(node, path, options)  # 6
    for path, node in tree:
        _check_python_limits(node, path, options)  # 7
    if options.validate.python_compile_check == "error":
        for path, node in tree:
            _check_python_source(node, path)  # 8
    if options.validate.template_syntax:
        for path, node in tree:
            _check_templates(node, path, options)  # 9
    for path, node in tree:
        _check_strict(node, path, options, context)  # 10
    return config


def config_warnings(config: GraderConfig, options: Options) -> list[str]:
    """What `/validate` accepts but the grader will not do as written, one line each, naming the field: a python
    `source` that cannot load (U47 `warn`), and template references that can never resolve (U48 off)."""
    out: list[str] = []
    for path, node in _walk(config):
        if isinstance(node, PythonGrader) and options.validate.python_compile_check == "warn":
            problem = python_source_problem(node.source)
            if problem:
                out.append(f"{_join(path, 'source')}: {problem} Every grade will be a python_grader_runtime_error (U47).")
        for field, text in templated_fields(node):
            template = compile_template(text, options.template)
            where = _join(path, field)
            if not options.validate.template_syntax:
                out += [f"{where}: {problem}; every grade will be an invalid_variable_error (U48)." for problem in template.problems]
            out += [f"{where}: {problem}" for problem in template.unreachable]
    return out


def validate(grader: Mapping[str, Any], options: Options | None = None, *, context: Context = "run") -> GraderValidateResponse:
    """`/validate` (§3.5): the config echoed in the order sent, with a generated `name` appended if absent; what
    will not work as written is in `warnings`, never in the echo."""
    options = options or Options()
    config = parse_grader(grader, options, context=context)
    import copy

    echo = copy.deepcopy(dict(grader))
    if options.validate.name_sub_graders and echo.get("type") == "multi":
        for sub in echo["graders"].values():
            if "name" not in sub:
                sub["name"] = generate_name()
    if "name" not in echo or echo["name"] is None:
        echo.pop("name", None)
        echo["name"] = generate_name()
    return GraderValidateResponse(echo, tuple(config_warnings(config, options)))
