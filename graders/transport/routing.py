"""Where each model's requests go (§9.2: the model client is pluggable), resolved once at compile from options.

The environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`) is read by `Options`, never here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..options import ModelClientOptions

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"
"""Sent when no key is configured: keyless local servers ignore it, OpenAI answers 401 (a server error, §9.3)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One server and the key sent to it: what identifies an endpoint (clients, limiter, fallback memory)."""

    base_url: str
    api_key: str = field(default="", repr=False)

    @property
    def configured(self) -> bool:
        """Whether anything was configured: a key, or a server other than OpenAI's."""
        return bool(self.api_key) or self.base_url != DEFAULT_BASE_URL


def resolve_route(model: str, opts: ModelClientOptions) -> Route:
    """The endpoint for `model`: the first matching `models.endpoints` entry, else `models.base_url`/`api_key`.

    An override that moves a model to another server without naming a key sends none, so the default key (often
    OpenAI's) never reaches a local server.
    """
    base = opts.base_url or DEFAULT_BASE_URL
    key = opts.api_key or ""
    for ep in opts.endpoints:
        if ep.model == model or fnmatch.fnmatchcase(model, ep.model):
            if ep.base_url:
                base, key = ep.base_url, ep.api_key or ""
            elif ep.api_key:
                key = ep.api_key
            break
    return Route(base.rstrip("/"), key)
