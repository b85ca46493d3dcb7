"""The only options a request may set: the scoring options (the U-numbered unknowns of §14), nothing else.

The allow-list is read from the option metadata (a description that starts with its U id), minus the U options
that are not about scoring but about the server's machine: an interpreter path, CPU cores, the source size limit
and the image tags the server looks up on its disk. Paths, endpoints, keys, limits and isolation settings are
never U-numbered, so they can only be set by whoever starts the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..options import OptionError, Options, describe_options
from ..errors import GraderValidationError, invalid_type, invalid_value

_U_ID = re.compile(r"U\d+\b")

NOT_FROM_REQUESTS: frozenset[str] = frozenset(
    {
        "python.interpreter",  # U31: a path on the server's disk
        "python.cpu_cores",  # U30: the server's CPU
        "python.max_source_bytes",  # U29: a resource limit of the server
        "python.image_tags",  # U32: which image environments the server looks up on its disk
    }
)

SCORING_OPTIONS: frozenset[str] = frozenset(
    name for name, _, description in describe_options() if _U_ID.match(description) and name not in NOT_FROM_REQUESTS
)
"""Dotted names a request's `options` object may set."""


def request_overrides(raw: Any) -> dict[str, Any]:
    """The `options` object of a request, checked against the allow-list; raises the 400 naming the bad key."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise invalid_type("options", "an object", raw)
    for name in raw:
        if name not in SCORING_OPTIONS:
            raise invalid_value(
                f"options.{name}",
                "only scoring options (the U-numbered ones, see `graders options`) can be set in a request; "
                "paths, endpoints, keys, limits and isolation are set when the server starts.",
            )
    return dict(raw)


def apply_overrides(base: Options, overrides: dict[str, Any]) -> Options:
    """`base` (the server's options) with a request's scoring options applied; a bad value is a 400."""
    if not overrides:
        return base
    try:
        return base.with_values(overrides)
    except OptionError as exc:
        name = next(iter(overrides)) if len(overrides) == 1 else None
        raise GraderValidationError(f"Invalid value for 'options': {exc}.", f"options.{name}" if name else "options", "invalid_value") from None
