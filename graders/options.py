"""Every behaviour the hosted service leaves unknown, as one named, switchable option (spec §2, §14).

Each field carries its spec id (U1…U49) and the spec's recommended default. Options are resolved once when a
grader is compiled and passed down; evaluators never read globals or environment variables themselves.

Flip an option by its dotted name, exactly as the spec spells it::

    opts = Options().with_values({"template.null_is_missing": True, "text_similarity.bleu.smoothing": "method4"})

``opts.flat()`` lists every option with its value, which fixtures and parity reports record (spec §2).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, use_attribute_docstrings=True)


class RunOptions(_Group):
    missing_item: Literal["empty", "error"] = "empty"
    """U1 `/run` without `item`: `{}` (empty) or a 400-style error."""
    legacy_reference_answer: bool = True
    """U2 map the May-2025 `reference_answer` into `item = {"reference_answer": …}` when `item` is absent."""


class ErrorsOptions(_Group):
    never_set: Literal["truncated_observation_error+unresponsive_reward_error"] = (
        "truncated_observation_error+unresponsive_reward_error"
    )
    """U3 no local trigger is known for these two flags; they stay false (U27 can still choose
    `unresponsive_reward_error` for python limit violations)."""


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
    envelope_style: Literal["relative_path"] = "relative_path"
    """U45 `param` is the path relative to the grader; codes invalid_type / invalid_value /
    missing_required_parameter (§12.1)."""
    label_subset_check: bool = True
    """U46 enforce `passing_labels` ⊆ `labels`."""
    python_compile_check: bool = True
    """U47 compile python `source` and require a two-argument `grade` at validation."""
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
    scorer: Literal["wratio_dp", "ratio", "ratio_dp", "wratio", "token_set_dp", "token_sort_dp", "partial"] = (
        "wratio_dp"
    )
    """U19 which rapidfuzz scorer `fuzzy_match` uses (calibration Table A, §7.4)."""


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
    wordnet_dir: str | None = None
    """An nltk-layout WordNet corpus directory to use instead of searching (§7.2)."""
    debian_wordnet_dir: str | None = None
    """Where Debian's `wordnet-base` lives (None: /usr/share/wordnet); copied into the graders cache once."""
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
    batch_size: int = Field(256, ge=1)
    """Texts per embeddings request in bulk runs."""


class TextSimilarityOptions(_Group):
    pass_threshold_outside_evals: Literal["ignore", "reject"] = "ignore"
    """U18 `pass_threshold` on a non-Evals text_similarity grader."""
    fuzzy_match: FuzzyMatchOptions = FuzzyMatchOptions()
    bleu: BleuOptions = BleuOptions()
    gleu: GleuOptions = GleuOptions()
    meteor: MeteorOptions = MeteorOptions()
    rouge: RougeOptions = RougeOptions()
    cosine: CosineOptions = CosineOptions()


def _env_float(name: str, default: float) -> float:
    """A positive number from the environment, read when `Options()` is built (never inside an evaluator)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be positive")
    return value


class PythonOptions(_Group):
    return_policy: Literal["lenient", "float_int_only", "coerce"] = "lenient"
    """U26 which return values of `grade` become a reward (§8.2)."""
    limit_violation_flag: Literal["runtime_error", "server_error", "unresponsive_reward_error"] = "runtime_error"
    """U27 flag set when the time, memory or disk limit is exceeded (§8.3)."""
    capture_output: Literal["trace", "discard"] = "trace"
    """U28 printed output goes to the local trace (`details`), never into the response."""
    max_source_bytes: int = Field(256000, ge=1)
    """U29 source size limit in UTF-8 bytes (or 262144)."""
    cpu_cores: int = Field(2, ge=1)
    """U30 CPU cores a grader may use."""
    interpreter: str | None = None
    """U31 interpreter for the workers; None = this Python (recorded in the response details)."""
    image_tags: tuple[str, ...] = ("2025-05-08", "alpha")
    """U32 accepted `image_tag` values; all are treated alike."""
    environment: Literal["auto", "image", "current"] = "auto"
    """Where grader code runs: auto = the installed image env for the grader's image_tag (graders image install),
    else this Python; image = require it; current = this Python."""
    images_dir: str | None = None
    """Where image environments live; None = $GRADERS_IMAGES_DIR or ~/.cache/graders/images."""
    timeout_s: float = Field(default_factory=lambda: _env_float("GRADERS_PYTHON_TIMEOUT", 120.0), gt=0)
    """§8.4 wall clock per grading call; process default from `GRADERS_PYTHON_TIMEOUT` (seconds)."""
    memory_bytes: int = Field(default_factory=lambda: int(_env_float("GRADERS_PYTHON_MEMORY_MB", 2048) * 1024**2), gt=0)
    """§8.4 address-space limit; process default from `GRADERS_PYTHON_MEMORY_MB`."""
    disk_bytes: int = Field(1024**3, gt=0)
    """§8.4 largest file a grader may write."""
    isolation: Literal["auto", "strict", "landlock"] = "auto"
    """Sandbox (docs/sandbox.md): auto = bubblewrap where it works, else the landlock level with a warning;
    strict = bubblewrap only; landlock = the level without namespaces. No level runs grader code as root."""
    uid_range: tuple[int, int] | None = None
    """As root, each worker runs as its own uid from this inclusive range; None = 1900000000-1900065535, or the
    top 4096 mapped ids inside a user namespace that does not map those."""
    max_warm_workers: int | None = Field(None, ge=1)
    """Warm workers kept process-wide across all grader sources (least recently used pools retired first);
    None = 4 per CPU core."""
    workers: int | None = Field(None, ge=1)
    """Warm worker processes per grader source; None = the number of CPU cores."""
    chunk_size: int = Field(100, ge=1)
    """Rows sent to a worker per message in bulk runs (one pipe round trip per chunk)."""
    fresh_process: bool = False
    """Run each grade in a process forked from a warm worker (module loaded once), so no state carries between
    samples; slower than warm reuse."""

    @field_validator("uid_range")
    @classmethod
    def _uid_range_unprivileged(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1] < 2**32 - 1:
            raise ValueError("python.uid_range must be (first, last) with 1 <= first <= last < 4294967295 (never root)")
        return value


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
    minmax_min_args: int = Field(1, ge=1)
    """U39 fewest arguments `min`/`max` accept."""
    log_base: Literal["e", "10"] = "e"
    """U39 base of `log`."""
    extensions: Literal["none"] = "none"
    """U39 no `**`, comparisons, ternaries, constants or other functions."""
    eval_error_flag: Literal["other_error", "formula_parse_error"] = "other_error"
    """U40 flag for math errors (division by zero, sqrt of a negative, log of ≤ 0, overflow, non-finite)."""
    division_by_zero: Literal["error", "ieee"] = "error"
    """U40 `x/0` is an error, or IEEE ±inf/nan (a non-finite final result is still an error)."""


class MultiOptions(_Group):
    sub_error_policy: Literal["zero_and_continue", "fail_whole"] = "zero_and_continue"
    """U41 a failing sub-grader counts as 0.0, or fails the whole multi."""
    sub_rewards_keys: Literal["key", "name"] = "key"
    """U42 key `sub_rewards`/`scores` by the `graders` map key or the sub-grader's name."""
    details_join: Literal["key_lines"] = "key_lines"
    """U43 one `"<key>: <text>"` line per failing sub-grader, joined by newlines."""
    sampled_model_name: Literal["first", "null"] = "first"
    """U44 the first model sub-grader's snapshot in key order, or null."""


class EvalsOptions(_Group):
    default_pass_threshold: float | None = None
    """U49 threshold for python/score_model without `pass_threshold` (None: `passed` is null)."""


class ModelEndpoint(_Group):
    """One model-name → endpoint override for `models.endpoints` (spec §9.2: the model client is pluggable)."""

    model: str
    """A model name as written in graders, or an fnmatch pattern such as `gpt-4.1-*`."""
    base_url: str | None = None
    """Endpoint for these models (e.g. `http://127.0.0.1:8000/v1`); None keeps `models.base_url`."""
    api_key: str | None = None
    """Key for this endpoint; None sends no key when `base_url` is overridden (the default key never leaks to
    another server), else keeps `models.api_key`. Recorded by `flat()`, so prefer keyless local servers."""


class ModelClientOptions(_Group):
    """Not unknowns: how score_model/label_model reach an OpenAI-compatible Chat Completions server (§9.2, §10)."""

    base_url: str | None = None
    """Default endpoint; None reads `OPENAI_BASE_URL` once at compile, else `https://api.openai.com/v1`."""
    api_key: str | None = None
    """Default key; None reads `OPENAI_API_KEY` once at compile (recorded by `flat()` when set here)."""
    endpoints: tuple[ModelEndpoint, ...] = ()
    """Per-model overrides, first match wins, e.g. `[{"model": "qwen*", "base_url": "http://127.0.0.1:8000/v1"}]`."""
    max_concurrency: int = Field(64, ge=1)
    """Requests in flight per endpoint, shared by every sample and sub-grader on the same event loop."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-request timeout (seconds); a timeout is a transient failure and is retried."""
    max_retries: int = Field(4, ge=0)
    """Retries after transient failures only (connect errors, timeouts, 429, 5xx); never 4xx or parse errors."""
    backoff_s: float = Field(0.5, ge=0)
    """First retry delay; doubles per attempt with full jitter, capped by `backoff_max_s`; `Retry-After` wins."""
    backoff_max_s: float = Field(30.0, ge=0)
    """Longest delay between two attempts, including a server's `Retry-After`."""
    cache_path: str | None = None
    """sqlite file caching successful grades by endpoint, model, messages, params and schema; None disables it."""
    response_format: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """auto: strict json_schema, falling back to json_object then text after a rejection (remembered per
    endpoint+model); the others force one mode."""


class Options(_Group):
    """All options in force for a compile; see the module docstring."""

    run: RunOptions = RunOptions()
    errors: ErrorsOptions = ErrorsOptions()
    response: ResponseOptions = ResponseOptions()
    validate_: ValidateOptions = Field(ValidateOptions(), alias="validate")
    template: TemplateOptions = TemplateOptions()
    sample: SampleOptions = SampleOptions()
    string_check: StringCheckOptions = StringCheckOptions()
    text_similarity: TextSimilarityOptions = TextSimilarityOptions()
    python: PythonOptions = Field(default_factory=PythonOptions)
    score_model: ScoreModelOptions = ScoreModelOptions()
    label_model: LabelModelOptions = LabelModelOptions()
    models: ModelClientOptions = ModelClientOptions()
    formula: FormulaOptions = FormulaOptions()
    multi: MultiOptions = MultiOptions()
    evals: EvalsOptions = EvalsOptions()
    explain: bool = False
    """Not an unknown: record rendered templates and intermediate values in each response's local `details`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True)

    def with_values(self, values: dict[str, Any]) -> Options:
        """A copy with the given dotted options set, e.g. ``{"multi.sub_error_policy": "fail_whole"}``."""
        data = self.model_dump(by_alias=True)
        for dotted, value in values.items():
            node = data
            parts = dotted.split(".")
            for i, part in enumerate(parts):
                if not isinstance(node, dict) or part not in node:
                    raise OptionError(f"unknown option {dotted!r} (no {'.'.join(parts[: i + 1])!r})")
                if i == len(parts) - 1:
                    if isinstance(node[part], dict):
                        raise OptionError(f"option {dotted!r} is a group; set one of its fields")
                    node[part] = value
                else:
                    node = node[part]
        try:
            return Options.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise OptionError(f"invalid value for option {where!r}: {first['msg']}") from None

    def flat(self) -> dict[str, Any]:
        """Every option as ``{"dotted.name": value}``, for fixtures and parity reports."""
        out: dict[str, Any] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for key, value in node.items():
                name = f"{prefix}{key}"
                if isinstance(value, dict):
                    walk(name + ".", value)
                else:
                    out[name] = _redact(list(value) if isinstance(value, tuple) else value, key)

        walk("", self.model_dump(by_alias=True))
        return out


_SECRET_KEYS = frozenset({"api_key"})


def _redact(value: Any, key: str = "") -> Any:
    """Secrets never reach fixtures, reports or printed option lists: a set key shows as "<set>"."""
    if key in _SECRET_KEYS:
        return None if value is None else "<set>"
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def describe_options(options: BaseModel | None = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, value, description) for every option, from the field docstrings above."""
    options = options if options is not None else Options()
    rows: list[tuple[str, Any, str]] = []
    for name, field in type(options).model_fields.items():
        value = getattr(options, name)
        dotted = prefix + (field.alias or name)
        if isinstance(value, BaseModel):
            rows += describe_options(value, dotted + ".")
        else:
            plain = [v.model_dump() if isinstance(v, BaseModel) else v for v in value] if isinstance(value, tuple) else value
            rows.append((dotted, _redact(plain, name), field.description or ""))
    return rows


class OptionError(ValueError):
    """An option name or value that does not exist."""


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

