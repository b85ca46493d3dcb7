"""Every behaviour the hosted service leaves unknown, as one named, switchable option (§2, §14).

Each field carries its id (U1…U50) in docs/behaviour.md and the recommended default. Options are resolved once when a
grader is compiled and passed down; evaluators never read globals or environment variables themselves. This is
the only module that reads the environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `GRADERS_PYTHON_TIMEOUT`,
`GRADERS_PYTHON_MEMORY_MB`, `GRADERS_IMAGES_DIR`, `XDG_CACHE_HOME`, `LOCAL_WORLD_SIZE`), once, when `Options()` is built, so
`flat()` records what was in force (keys only as `"<set>"`).

Flip an option by its dotted name::

    opts = Options().with_values({"template.null_is_missing": True, "text_similarity.bleu.smoothing": "method4"})

Options are small frozen records, checked against their annotations when a value is set (`with_values`), with
an `OptionError` that names the option; declaring them and building the defaults checks nothing and costs
almost nothing at import (no dataclass code generation, no validation library).
Some unknowns have a single possible behaviour here and so no option: `FIXED_BEHAVIOURS` names them.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

T = TypeVar("T")

OPENAI_BASE_URL = "https://api.openai.com/v1"

FIXED_BEHAVIOURS: dict[str, str] = {
    "U3": "truncated_observation_error and unresponsive_reward_error have no known local trigger and stay false "
    "(U27 can still choose unresponsive_reward_error for python limit violations).",
    "U39": "formulas have no extensions: no `**`, comparisons, ternaries, constants or other functions; a variable is "
    "spelled `[A-Za-z_][A-Za-z0-9_]*` (any other spelling would collide with the operators, e.g. `a-b`).",
    "U43": "multi writes one `<key>: <text>` line per failing sub-grader into each details key, joined by newlines.",
    "U45": "the error envelope's `param` is the path relative to the grader, with the codes invalid_type, "
    "invalid_value and missing_required_parameter (§12.1).",
}
"""Unknowns with one behaviour and no option, by id: documented here so that every U-id is accounted for."""


class OptionError(ValueError):
    """An option name or value that does not exist, or an environment variable that does not parse."""


_NO_DEFAULT: Any = object()


class _Field:
    """One option: its default (or a factory read when the options are built) and its checks."""

    __slots__ = ("name", "default", "factory", "ge", "gt", "path", "secret", "check")

    def __init__(
        self,
        default: Any = _NO_DEFAULT,
        factory: Callable[[], Any] | None = None,
        *,
        ge: float | None = None,
        gt: float | None = None,
        path: bool = False,
        secret: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.name = ""
        self.default = default
        self.factory = factory
        self.ge = ge
        self.gt = gt
        self.path = path
        self.secret = secret
        self.check = check

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT and self.factory is None

    def initial(self) -> Any:
        return self.factory() if self.factory is not None else self.default


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    path: bool = False,
    secret: bool = False,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """A field with a default and checks: `ge`/`gt` bounds, `path` (a `~` is expanded), `secret` (never shown),
    `check` (returns why a value is refused, or None)."""
    return _Field(default, ge=ge, gt=gt, path=path, secret=secret, check=check)


def from_env(
    factory: Callable[[], Any],
    *,
    gt: float | None = None,
    path: bool = False,
    secret: bool = False,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """A field whose default is read from the environment each time the options are built (`check` applies to
    values set with `with_values`)."""
    return _Field(factory=factory, gt=gt, path=path, secret=secret, check=check)


def group(cls: Callable[[], T]) -> T:
    """A nested group of options, defaulting to its own defaults."""
    field: Any = _Field(factory=cls)
    return field


class _Group:
    """A frozen record of options: fields declared as annotated class attributes, in order."""

    _fields: ClassVar[tuple[_Field, ...]] = ()

    def __init_subclass__(cls) -> None:
        fields = []
        for name in cls.__dict__.get("__annotations__", {}):
            spec = cls.__dict__.get(name, _NO_DEFAULT)
            field = spec if isinstance(spec, _Field) else _Field(spec)
            field.name = name
            fields.append(field)
        cls._fields = tuple(fields)

    def __init__(self, **values: Any) -> None:
        for field in self._fields:
            if field.name in values:
                value = values.pop(field.name)
            elif field.required:
                raise TypeError(f"{type(self).__name__} needs {field.name!r}")
            else:
                value = field.initial()
            object.__setattr__(self, field.name, value)
        if values:
            raise TypeError(f"{type(self).__name__} has no option {sorted(values)[0]!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"options are immutable; use with_values() to change {name!r}")

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (no checks: `with_values` checks)."""
        return type(self)(**{f.name: getattr(self, f.name) for f in self._fields} | changes)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={'<set>' if f.secret and getattr(self, f.name) else repr(getattr(self, f.name))}" for f in self._fields)
        return f"{type(self).__name__}({shown})"


def _cache_root() -> Path:
    """The graders cache: `$XDG_CACHE_HOME/graders`, else `~/.cache/graders`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")) / "graders"


def _env_float(name: str, default: float) -> float:
    """A positive number from the environment, read when `Options()` is built (never inside an evaluator)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise OptionError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise OptionError(f"environment variable {name}={raw!r} must be positive")
    return value


def _env_count(name: str) -> int | None:
    """A positive integer another tool set in the environment (torchrun's `LOCAL_WORLD_SIZE`), else None."""
    raw = (os.environ.get(name) or "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def _http_url(value: str | None) -> str | None:
    """Model endpoints are reached over HTTP(S)."""
    if value is not None and not value.lower().startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    return None


def _unprivileged_uid_range(value: tuple[int, int]) -> str | None:
    """`python.uid_range` is (first, last) of unprivileged uids: never root, never the overflow uid."""
    if len(value) != 2 or not 1 <= value[0] <= value[1] < 2**32 - 1:
        return "must be [first, last] with 1 <= first <= last < 4294967295 (never root)"
    return None


class RunOptions(_Group):
    missing_item: Literal["empty", "error"] = "empty"
    """U1 `/run` without `item`: `{}` (empty) or a 400-style error."""
    legacy_reference_answer: bool = True
    """U2 map the May-2025 `reference_answer` into `item = {"reference_answer": …}` when `item` is absent."""


class ResponseOptions(_Group):
    token_usage_format: Literal["object", "integer", "null"] = "object"
    """U4 shape of `metadata.token_usage` for model graders (§3.4)."""
    error_keys: Literal["observed24", "schema14"] = "observed24"
    """§3.3 emit the 24 observed error keys, or only the 14 the schema declares."""


class ValidateOptions(_Group):
    name_sub_graders: bool = False
    """U5 give unnamed `multi` sub-graders a generated name in the `/validate` echo."""
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    """U6 unknown extra fields: echoed and ignored, or a 400."""
    cosine_evals_only: bool = False
    """U24 reject `cosine` outside Evals."""
    model_allow_list: bool = False
    """U35 restrict `model` to the guide's list of grader models (§9.4)."""
    strict_model_params: bool = False
    """U36 reject `temperature` on reasoning models and `reasoning_effort` on others."""
    label_subset_check: bool = True
    """U46 enforce `passing_labels` ⊆ `labels`."""
    python_compile_check: Literal["warn", "error", "off"] = "warn"
    """U47 compile python `source` and look for a two-argument `grade` at validation: warn = the echo succeeds and
    the problem is reported beside it (`GraderValidateResponse.warnings`, a warning line from `graders validate`),
    as a hosted run accepted a source that does not compile; error = a 400; off = not checked."""
    template_syntax: bool = False
    """U48 reject malformed `{{ … }}` references at validation instead of at run time."""


class TemplateOptions(_Group):
    path_grammar: Literal["strict", "extended"] = "strict"
    """U7 strict: only `.key` and `[n]`; extended adds `[-n]` and quoted keys `["a b"]`."""
    unmatched_braces: Literal["error", "literal"] = "error"
    """U8 a `{{ … }}` that is not a valid reference: invalid_variable_error, or kept as literal text."""
    output_json_unavailable_flag: Literal["invalid_variable_error", "sample_parse_error"] = "invalid_variable_error"
    """U12 flag set when a reference goes through `sample.output_json` and the sample is not JSON."""
    null_is_missing: bool = False
    """U13 a reference that resolves to `null` is unresolved instead of rendering `null`."""
    non_string_rendering: Literal["json", "python"] = "json"
    """U14 how non-string values are rendered into text (§5.6)."""
    json_string_steps: Literal["off", "parse"] = "off"
    """U50 a path step into a string that holds JSON (a tool call's `function.arguments`): off = unresolved
    (invalid_variable_error); parse = the step goes into the parsed value."""


class SampleOptions(_Group):
    output_json_scope: Literal["any_json", "objects_only"] = "any_json"
    """U9 `output_json` for non-object JSON such as `"0.9"` or `"[1,2]"`."""
    tools_from_model_sample: bool = False
    """U10 fill `output_tools` when `model_sample` is a JSON array of tool calls."""
    extra_keys: tuple[Literal["model", "input_tools"], ...] = ()
    """U11 extra keys added to `sample` (`model: null`, `input_tools: []`)."""


class StringCheckOptions(_Group):
    like_wildcards: bool = False
    """U15 treat `%` and `_` in a `like`/`ilike` reference as SQL wildcards."""
    ilike_fold: Literal["lower", "casefold"] = "lower"
    """U16 case folding used by `ilike`."""
    accept_neq_alias: bool = False
    """U17 accept `neq` as an alias of `ne`."""


class FuzzyMatchOptions(_Group):
    scorer: Literal["ratio", "ratio_dp", "wratio", "wratio_dp", "token_set_dp", "token_sort_dp", "partial"] = "ratio"
    """U19 which rapidfuzz scorer `fuzzy_match` uses (calibration Table A, §7.4); plain `ratio` matches a hosted
    value (§7.2)."""
    max_partial_chars: int = bounded(2000, ge=1)
    """Longest shorter text for `partial_ratio` (the `partial` scorer, and `wratio`/`wratio_dp` when one text is
    1.5x the other), whose cost grows with the cube of it; past it the grade is other_error naming the input."""


class BleuOptions(_Group):
    implementation: Literal["nltk", "sacrebleu"] = "nltk"
    """U20 nltk `sentence_bleu` or sacrebleu `sentence_bleu(...).score / 100`."""
    tokenizer: Literal["split", "nltk_word"] = "split"
    """U20 `str.split()` or nltk's `NLTKWordTokenizer` (nltk implementation only)."""
    smoothing: Literal["none", "method1", "method2", "method3", "method4", "method5", "method6", "method7"] = (
        "method1"
    )
    """U20 nltk `SmoothingFunction` method (nltk implementation only)."""


class GleuOptions(_Group):
    tokenizer: Literal["split", "nltk_word"] = "split"
    """U21 tokens for nltk `sentence_gleu`."""


class MeteorOptions(_Group):
    tokenizer: Literal["split", "nltk_word"] = "split"
    """U22 tokens for nltk `meteor_score`."""
    alpha: float = 0.9
    """U22 nltk default."""
    beta: float = 3.0
    """U22 nltk default."""
    gamma: float = 0.5
    """U22 nltk default."""
    wordnet_dir: str | None = bounded(None, path=True)
    """An nltk-layout WordNet corpus directory to use instead of searching (§7.2)."""
    debian_wordnet_dir: str | None = bounded(None, path=True)
    """Where Debian's `wordnet-base` lives (None: /usr/share/wordnet); copied into the graders cache once."""
    wordnet_cache: str = from_env(lambda: str(_cache_root() / "nltk_data"), path=True)
    """Where Debian's WordNet is laid out once in nltk's layout: `nltk_data` in the graders cache
    (`$XDG_CACHE_HOME/graders` or `~/.cache/graders`), resolved when the options are built."""
    wordnet_download: bool = False
    """Allow `nltk.download("wordnet")` when no local WordNet is found (needs internet; off: never block)."""


class RougeOptions(_Group):
    measure: Literal["fmeasure", "precision", "recall"] = "fmeasure"
    """U23 which rouge-score value becomes the reward."""
    stemmer: bool = False
    """U23 rouge-score's Porter stemmer."""
    tokenizer: Literal["rouge_score", "unicode"] = "rouge_score"
    """rouge-score's own tokenizer (keeps `[a-z0-9]` runs, so CJK/Thai score 0) or a Unicode-aware one."""


class CosineOptions(_Group):
    unavailable_flag: Literal["other_error", "model_grader_server_error"] = "other_error"
    """U25 flag when no embeddings client is configured."""
    report_usage: bool = False
    """U25 report embedding tokens in `model_grader_token_usage_per_model`."""
    model: str = "text-embedding-3-large"
    """Embedding model name sent to the embeddings endpoint (routed like grader models by `models.*`)."""
    batch_size: int = bounded(256, ge=1)
    """Texts per embeddings request in bulk runs."""


class TextSimilarityOptions(_Group):
    pass_threshold_outside_evals: Literal["ignore", "reject"] = "ignore"
    """U18 `pass_threshold` on a non-Evals text_similarity grader."""
    max_chars: int = bounded(100_000, ge=1)
    """Longest rendered `input` or `reference` any metric scores (fuzzy_match and rouge_l are quadratic); past it
    the grade is other_error naming the input, so no grade costs more than about a second."""
    fuzzy_match: FuzzyMatchOptions = group(FuzzyMatchOptions)
    bleu: BleuOptions = group(BleuOptions)
    gleu: GleuOptions = group(GleuOptions)
    meteor: MeteorOptions = group(MeteorOptions)
    rouge: RougeOptions = group(RougeOptions)
    cosine: CosineOptions = group(CosineOptions)


class PythonOptions(_Group):
    return_policy: Literal["lenient", "float_int_only", "coerce"] = "lenient"
    """U26 which return values of `grade` become a reward (§8.2)."""
    limit_violation_flag: Literal["runtime_error", "server_error", "unresponsive_reward_error"] = "runtime_error"
    """U27 flag set when the time, memory or disk limit is exceeded (§8.3)."""
    capture_output: Literal["trace", "discard"] = "trace"
    """U28 printed output goes to the local trace (`details`), never into the response."""
    max_source_bytes: int = bounded(256000, ge=1)
    """U29 source size limit in UTF-8 bytes (or 262144)."""
    cpu_cores: int = bounded(2, ge=1)
    """U30 CPU cores a grader may use."""
    interpreter: str | None = None
    """U31 interpreter for the workers; None = this Python (recorded in the response details)."""
    image_tags: tuple[str, ...] = ("2025-05-08", "alpha")
    """U32 accepted `image_tag` values; all are treated alike."""
    environment: Literal["auto", "image", "current"] = "auto"
    """Where grader code runs: auto = the installed image env for the grader's image_tag (graders image install),
    else this Python; image = require it; current = this Python."""
    images_dir: str = from_env(lambda: os.environ.get("GRADERS_IMAGES_DIR") or str(_cache_root() / "images"), path=True)
    """Where image environments live: `$GRADERS_IMAGES_DIR`, else `images` in the graders cache
    (`$XDG_CACHE_HOME/graders` or `~/.cache/graders`), resolved when the options are built."""
    timeout_s: float = from_env(lambda: _env_float("GRADERS_PYTHON_TIMEOUT", 120.0), gt=0)
    """§8.4 wall clock per grading call; process default from `GRADERS_PYTHON_TIMEOUT` (seconds)."""
    memory_bytes: int = from_env(lambda: int(_env_float("GRADERS_PYTHON_MEMORY_MB", 2048) * 1024**2), gt=0)
    """§8.4 address-space limit; process default from `GRADERS_PYTHON_MEMORY_MB`."""
    disk_bytes: int = bounded(1024**3, gt=0)
    """§8.4 largest file a grader may write."""
    isolation: Literal["auto", "strict", "landlock"] = "auto"
    """Sandbox (docs/sandbox.md): auto = bubblewrap where it works, else the landlock level with a warning;
    strict = bubblewrap only; landlock = the level without namespaces. No level runs grader code as root."""
    uid_range: tuple[int, int] | None = bounded(None, check=_unprivileged_uid_range)
    """As root, each worker runs as its own uid from this inclusive range; None = 1900000000-1900065535, or the
    top 4096 mapped ids inside a user namespace that does not map those."""
    max_warm_workers: int | None = bounded(None, ge=1)
    """Warm workers kept process-wide across all grader sources (least recently used pools retired first);
    None = 4 per CPU core."""
    workers: int | None = bounded(None, ge=1)
    """Warm worker processes per grader source; None = the number of CPU cores."""
    chunk_size: int = bounded(100, ge=1)
    """Rows sent to a worker per message in bulk runs (one pipe round trip per chunk)."""
    max_input_bytes: int = bounded(64 * 1024**2, ge=1024)
    """Largest row (`sample` and `item` as JSON) sent to a worker, which must hold it a few times over within
    `memory_bytes`; past it the grade is other_error naming the larger of the two."""
    fresh_process: bool = False
    """Run each grade in a process forked from a warm worker (module loaded once), so no state carries between
    samples; slower than warm reuse."""



class ScoreModelOptions(_Group):
    response_schema: Literal["cookbook", "minimal"] = "cookbook"
    """U33 the structured-output schema sent to the grader model (§9.2)."""
    range_in_schema: bool = True
    """U34 fill the range into the `result` description."""


class LabelModelOptions(_Group):
    response_schema: Literal["enum_steps", "enum_only"] = "enum_steps"
    """U37 `result` constrained to `labels`, with or without `steps`."""
    sampling_params: Literal["pass_through", "reject"] = "pass_through"
    """U38 label_model `sampling_params`: passed through (max_tokens is the cap) or rejected."""


class FormulaOptions(_Group):
    unary: bool = True
    """U39 allow unary `+`/`-`."""
    power_assoc: Literal["right", "left"] = "right"
    """U39 associativity of `^` (right: 2^3^2 = 512)."""
    minmax_min_args: int = bounded(1, ge=1)
    """U39 fewest arguments `min`/`max` accept."""
    log_base: Literal["e", "10"] = "e"
    """U39 base of `log`."""
    eval_error_flag: Literal["other_error", "formula_parse_error"] = "other_error"
    """U40 flag for math errors (division by zero, sqrt of a negative, log of ≤ 0, overflow, non-finite)."""
    division_by_zero: Literal["error", "ieee"] = "error"
    """U40 `x/0` is an error, or IEEE ±inf/nan (a non-finite final result is still an error)."""


class MultiOptions(_Group):
    sub_error_policy: Literal["zero_and_continue", "fail_whole"] = "zero_and_continue"
    """U41 a failing sub-grader counts as 0.0, or fails the whole multi."""
    sub_rewards_keys: Literal["key", "name"] = "key"
    """U42 key `sub_rewards`/`scores` by the `graders` map key or the sub-grader's name."""
    sampled_model_name: Literal["first", "null"] = "first"
    """U44 the first model sub-grader's snapshot in key order, or null."""


class EvalsOptions(_Group):
    default_pass_threshold: float | None = None
    """U49 threshold for python/score_model without `pass_threshold` (None: `passed` is null)."""


class ModelEndpoint(_Group):
    """One model-name → endpoint override for `models.endpoints` (§9.2: the model client is pluggable)."""

    model: str
    """A model name as written in graders, or an fnmatch pattern such as `gpt-4.1-*`."""
    base_url: str | None = bounded(None, check=_http_url)
    """Endpoint for these models (e.g. `http://127.0.0.1:8000/v1`); None keeps `models.base_url`."""
    api_key: str | None = bounded(None, secret=True)
    """Key for this endpoint; None sends no key when `base_url` is overridden (the default key never leaks to
    another server), else keeps `models.api_key`. Recorded by `flat()`, so prefer keyless local servers."""
    api_style: Literal["openai", "azure"] | None = None
    """How requests are addressed and signed (see `models.api_style`); None keeps `models.api_style`, or "openai"
    when `base_url` is overridden (a server of its own inherits nothing from the default one)."""
    api_version: str | None = None
    """Azure's `api-version` for these models; None keeps `models.api_version`."""
    deployment: str | None = None
    """Azure deployment serving these models (`api_style: "azure"` only); None uses the grader's model name."""
    max_rpm: int | None = bounded(None, ge=1)
    """Requests per minute for these models, a budget of their own; None keeps `models.max_rpm` (none when
    `base_url` is overridden)."""
    max_tpm: int | None = bounded(None, ge=1)
    """Tokens per minute for these models, a budget of their own; None keeps `models.max_tpm` (none when
    `base_url` is overridden)."""


class ModelClientOptions(_Group):
    """Not unknowns: how score_model/label_model reach an OpenAI-compatible Chat Completions server (§9.2, §10)."""

    base_url: str = from_env(lambda: os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL, check=_http_url)
    """Default endpoint: `$OPENAI_BASE_URL` when the options are built, else `https://api.openai.com/v1`."""
    api_key: str | None = from_env(lambda: os.environ.get("OPENAI_API_KEY") or None, secret=True)
    """Default key: `$OPENAI_API_KEY` when the options are built (`flat()` shows only whether one is set)."""
    endpoints: tuple[ModelEndpoint, ...] = ()
    """Per-model overrides, first match wins: `model` (a name or pattern) and any of `base_url`, `api_key`,
    `api_style`, `api_version`, `deployment`, `max_rpm`, `max_tpm`, e.g.
    `[{"model": "qwen*", "base_url": "http://127.0.0.1:8000/v1"}]` (docs/models.md)."""
    max_concurrency: int = bounded(64, ge=1)
    """Requests in flight per endpoint, shared by every sample and sub-grader on the same event loop."""
    timeout_s: float = bounded(60.0, gt=0)
    """Per-request timeout (seconds); a timeout is a transient failure and is retried."""
    max_retries: int = bounded(4, ge=0)
    """Retries after transient failures only (connect errors, timeouts, 429, 5xx); never 4xx or parse errors."""
    backoff_s: float = bounded(0.5, ge=0)
    """First retry delay; doubles per attempt with full jitter, capped by `backoff_max_s`; `Retry-After` wins."""
    backoff_max_s: float = bounded(30.0, ge=0)
    """Longest delay between two attempts, including a server's `Retry-After`."""
    cache_path: str | None = bounded(None, path=True)
    """sqlite file caching successful grades by endpoint, model, messages, params and schema; None disables it."""
    response_format: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """auto: strict json_schema, falling back to json_object then text after a rejection (remembered per
    endpoint+model); the others force one mode."""
    transport: Literal["lean", "openai_sdk"] = "lean"
    """HTTP client: `lean` (keep-alive HTTP/1.1 on asyncio, the fast path) or `openai_sdk` (the official SDK,
    for HTTP proxies from the environment or anything else the lean client does not cover)."""
    api_style: Literal["openai", "azure"] = "openai"
    """`openai`: `{base_url}/chat/completions` with `Authorization: Bearer`; `azure`: Azure OpenAI's
    `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...` with an `api-key` header."""
    api_version: str = "2024-10-21"
    """Azure's `api-version` query parameter (`api_style: "azure"` only)."""
    max_rpm: int | None = bounded(None, ge=1)
    """Requests per minute per endpoint (every attempt counts), shared by everything in the process calling it;
    None: no limit. The burst is at most one second's share (1/60 of the limit)."""
    max_tpm: int | None = bounded(None, ge=1)
    """Tokens per minute per endpoint: each request is counted before it is sent as its text's characters / 4
    plus its completion cap, then corrected from the reply's usage; None: no limit."""


class BatchOptions(_Group):
    """Not unknowns: how bulk runs (`run_many`, `iter_run`, `graders batch`) use the machine."""

    workers: int | None = bounded(None, ge=1)
    """Shard processes for bulk runs; None = the cores this process may use (CPU affinity and cgroup quota)."""
    parallel_min_rows: int = bounded(2000, ge=1)
    """Inputs with fewer rows are graded in-process (no shard start-up for a few rows)."""
    shard_min_row_us: float = bounded(50.0, ge=0)
    """`run_many` / `iter_run` hand in-memory rows to shards only if their first `parallel_min_rows` rows took at
    least this many microseconds each to grade in-process: moving a row and its outcome costs the parent about 10
    µs, so cheaper graders are faster in-process."""
    block_rows: int = bounded(1000, ge=1)
    """Rows per block handed to a shard by `run_many` / `iter_run` (also capped by their `chunk_size`)."""
    block_bytes: int = bounded(131072, ge=1024)
    """Input bytes per block in `graders batch`; output is flushed a block at a time, so a crash loses at most
    the blocks in flight."""
    progress_interval_s: float = bounded(5.0, gt=0)
    """Seconds between two plain progress lines when stderr is not a terminal."""


class RLOptions(_Group):
    """Not unknowns: how the RL trainer adapters (`graders.integrations`) share the machine."""

    local_processes: int | None = from_env(lambda: _env_count("LOCAL_WORLD_SIZE"))
    """Processes on this machine that score rewards at once (torchrun and accelerate set `LOCAL_WORLD_SIZE`); an
    adapter gives each the cores ÷ this as python sandbox workers unless `python.workers` is set (in a Ray actor:
    the CPUs Ray assigned it)."""


class Options(_Group):
    """All options in force for a compile; see the module docstring."""

    run: RunOptions = group(RunOptions)
    response: ResponseOptions = group(ResponseOptions)
    validate: ValidateOptions = group(ValidateOptions)
    template: TemplateOptions = group(TemplateOptions)
    sample: SampleOptions = group(SampleOptions)
    string_check: StringCheckOptions = group(StringCheckOptions)
    text_similarity: TextSimilarityOptions = group(TextSimilarityOptions)
    python: PythonOptions = group(PythonOptions)
    score_model: ScoreModelOptions = group(ScoreModelOptions)
    label_model: LabelModelOptions = group(LabelModelOptions)
    models: ModelClientOptions = group(ModelClientOptions)
    formula: FormulaOptions = group(FormulaOptions)
    multi: MultiOptions = group(MultiOptions)
    evals: EvalsOptions = group(EvalsOptions)
    batch: BatchOptions = group(BatchOptions)
    rl: RLOptions = group(RLOptions)
    explain: bool = False
    """Not an unknown: record rendered templates and intermediate values in each response's local `details`."""

    def with_values(self, values: dict[str, Any]) -> Options:
        """A copy with the given dotted options set, e.g. ``{"multi.sub_error_policy": "fail_whole"}``."""
        out = self
        for dotted, value in values.items():
            out = _set(out, dotted.split("."), value, dotted)
        return out

    def flat(self) -> dict[str, Any]:
        """Every option as ``{"dotted.name": value}``, for fixtures and parity reports (secrets as `"<set>"`)."""
        return {name: value for name, value, _ in _rows(self, "")}


# -- setting and checking values ------------------------------------------------------------------------------------


def _set(node: Any, parts: list[str], value: Any, dotted: str, depth: int = 0) -> Any:
    name = parts[depth]
    fields = {f.name: f for f in node._fields}
    if name not in fields:
        raise OptionError(_unknown(dotted, parts, depth))
    current = getattr(node, name)
    if depth == len(parts) - 1:
        if isinstance(current, _Group):
            raise OptionError(f"option {dotted!r} is a group; set one of its fields")
        hint = _hints(type(node))[name]
        return node.replace(**{name: _check(value, hint, fields[name], dotted)})
    if not isinstance(current, _Group):
        raise OptionError(f"unknown option {dotted!r} ({'.'.join(parts[: depth + 1])!r} is an option, not a group)")
    return node.replace(**{name: _set(current, parts, value, dotted, depth + 1)})


def _unknown(dotted: str, parts: list[str], depth: int) -> str:
    """`unknown option 'a.b.c'`, saying which group lacks which name, and the nearest real names."""
    import difflib

    where = f" ({'.'.join(parts[:depth])!r} has no {parts[depth]!r})" if depth else ""
    near = difflib.get_close_matches(dotted, list(Options().flat()), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else "; `graders options` lists them all"
    return f"unknown option {dotted!r}{where}{hint}"


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The evaluated annotations of an options class, computed on first use."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of ({_describe(typing.get_args(hint)[0])})"
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and issubclass(hint, _Group):
        return "an object with " + ", ".join(repr(f.name) for f in hint._fields)
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _check(value: Any, hint: Any, field: _Field, dotted: str) -> Any:
    """`value` as the field's type, or `OptionError` naming the option, what it got and what it accepts."""
    try:
        checked = _coerce(value, hint, dotted)
    except _Mismatch as exc:
        got = exc.value
        raise OptionError(f"invalid value for option {exc.where!r}: expected {_describe(exc.hint)}, got {got!r}") from None
    if checked is not None and field.ge is not None and not checked >= field.ge:
        raise OptionError(f"invalid value for option {dotted!r}: must be >= {field.ge:g}, got {value!r}")
    if checked is not None and field.gt is not None and not checked > field.gt:
        raise OptionError(f"invalid value for option {dotted!r}: must be > {field.gt:g}, got {value!r}")
    if checked is not None and field.check is not None:
        problem = field.check(checked)
        if problem is not None:
            raise OptionError(f"invalid value for option {dotted!r}: {problem}, got {value!r}")
    if field.path and isinstance(checked, str):
        checked = os.path.expanduser(checked)
    return checked


class _Mismatch(Exception):
    """`value` at `where` (an option, or an item of one) does not fit `hint`."""

    def __init__(self, where: str, hint: Any, value: Any) -> None:
        self.where = where
        self.hint = hint
        self.value = value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        for allowed in typing.get_args(hint):
            if value == allowed and type(value) is type(allowed):
                return allowed
        raise _Mismatch(where, hint, value)
    if origin is Union or origin is types.UnionType:
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except _Mismatch:
                continue
        raise _Mismatch(where, hint, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(where, hint, value)
        item = typing.get_args(hint)[0]
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch(where, hint, value)
    if isinstance(hint, type) and issubclass(hint, _Group):
        return _record(value, hint, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise _Mismatch(where, hint, value)


def _record(value: Any, cls: Any, where: str) -> Any:
    """An options record (a `models.endpoints` entry) from its object form; unknown keys are errors."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise _Mismatch(where, cls, value)
    fields = {f.name: f for f in cls._fields}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise OptionError(f"invalid value for option {where!r}: unknown key {unknown[0]!r}; expected {', '.join(fields)}")
    hints = _hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _check(value[name], hints[name], f, f"{where}.{name}")
        elif f.required:
            raise OptionError(f"invalid value for option {where!r}: missing key {name!r}")
    return cls(**kwargs)


# -- listing ------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON would hold it: tuples as lists, records as objects with secrets redacted."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, _Group):
        return {f.name: _shown(getattr(value, f.name), f) for f in value._fields}
    return value


def _shown(value: Any, f: _Field) -> Any:
    """Secrets never reach fixtures, reports or printed option lists: a set key shows as "<set>"."""
    if f.secret:
        return None if value is None else "<set>"
    return _plain(value)


def _rows(node: _Group, prefix: str) -> list[tuple[str, Any, _Field]]:
    rows: list[tuple[str, Any, _Field]] = []
    for f in node._fields:
        value = getattr(node, f.name)
        if isinstance(value, _Group):
            rows += _rows(value, f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, _shown(value, f), f))
    return rows


def describe_options(options: Options | None = None) -> list[tuple[str, Any, str]]:
    """(dotted name, value, description) for every option; descriptions are the field docstrings above."""
    options = options if options is not None else Options()
    docs = _field_docs()
    return [(name, value, docs.get(_owner(options, name), "")) for name, value, _ in _rows(options, "")]


def option_kind(dotted: str) -> dict[str, Any]:
    """What values one option takes, for a form: `{"kind": "enum", "choices": [...]}`, `bool`, `integer`, `number`,
    `string`, or `json` (lists, records, unions), with `"nullable": true` where null is allowed."""
    node: Any = Options
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = _hints(node)[part]
    hint = _hints(node)[parts[-1]]
    args = typing.get_args(hint)
    nullable = (typing.get_origin(hint) is Union or typing.get_origin(hint) is types.UnionType) and type(None) in args
    if nullable:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    if typing.get_origin(hint) is Literal:
        kind: dict[str, Any] = {"kind": "enum", "choices": list(typing.get_args(hint))}
    else:
        kind = {"kind": {bool: "bool", int: "integer", float: "number", str: "string"}.get(hint, "json")}
    if nullable:
        kind["nullable"] = True
    return kind


def _owner(options: Options, dotted: str) -> str:
    """`Class.field` for a dotted option name, the key of `_field_docs`."""
    node: Any = options
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = getattr(node, part)
    return f"{type(node).__name__}.{parts[-1]}"


_DOCS: dict[str, str] = {}


def _field_docs() -> dict[str, str]:
    """`{"Class.field": docstring}` read from this module's source, once, when descriptions are first asked for."""
    if not _DOCS:
        import ast

        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            body = cls.body
            for stmt, nxt in zip(body, body[1:]):
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)
                ):
                    _DOCS[f"{cls.name}.{stmt.target.id}"] = " ".join(nxt.value.value.split())
    return _DOCS


def parse_option_assignment(text: str) -> tuple[str, Any]:
    """Parse a CLI ``name=value`` pair; the value is read as JSON when it parses, else as a string."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise OptionError(f"option {text!r} must look like name=value")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value
