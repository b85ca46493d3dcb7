"""Where each model's requests go (§9.2: the model client is pluggable), resolved once at compile from options.

The environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`) is read by `Options`, never here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from urllib.parse import quote

from ..options import ModelClientOptions, ModelEndpoint

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"
"""Sent when no key is configured: keyless local servers ignore it, OpenAI answers 401 (a server error, §9.3)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What an HTTP client needs to reach a route: the URL every path is appended to, a query string added to
    every request, and the headers that sign it."""

    base_url: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Route:
    """One server, the key sent to it and how it is addressed: what identifies an endpoint (clients, limiter,
    fallback memory). For Azure (`api_style == "azure"`) the deployment is part of it: each deployment is a
    model of its own with limits of its own."""

    base_url: str
    api_key: str = field(default="", repr=False)
    api_style: str = "openai"
    api_version: str = ""
    deployment: str = ""

    @property
    def configured(self) -> bool:
        """Whether anything was configured: a key, or a server other than OpenAI's."""
        return bool(self.api_key) or self.base_url != DEFAULT_BASE_URL

    @property
    def location(self) -> str:
        """The URL requests are sent under (the deployment's for Azure), e.g. for cache keys and reports."""
        if self.api_style == "azure":
            return f"{self.base_url}/openai/deployments/{quote(self.deployment, safe='')}"
        return self.base_url

    def target(self) -> Target:
        """The URL, query and signing headers: `Authorization: Bearer` for OpenAI-style servers (a placeholder
        key when none is set, which keyless servers ignore), Azure's `api-key` header and `api-version` query."""
        if self.api_style == "azure":
            headers = {"api-key": self.api_key} if self.api_key else {}
            return Target(self.location, f"api-version={quote(self.api_version, safe='')}", headers)
        return Target(self.base_url, "", {"Authorization": f"Bearer {self.api_key or NO_KEY}"})


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests and tokens per minute for one budget (None: unlimited). `scope` names the budget within its
    route: "" for the route's default one, else the `models.endpoints` pattern that has a budget of its own."""

    max_rpm: int | None = None
    max_tpm: int | None = None
    scope: str = ""


def _entry(model: str, opts: ModelClientOptions) -> ModelEndpoint | None:
    for ep in opts.endpoints:
        if ep.model == model or fnmatch.fnmatchcase(model, ep.model):
            return ep
    return None


def resolve_route(model: str, opts: ModelClientOptions) -> Route:
    """The endpoint for `model`: the first matching `models.endpoints` entry, else the `models.*` defaults.

    An entry that moves a model to another server describes a server of its own: without a key of its own it
    sends none, so the default key (often OpenAI's) never reaches a local server, and its style is "openai"
    unless it says otherwise.
    """
    base = opts.base_url or DEFAULT_BASE_URL
    key = opts.api_key or ""
    style, version, deployment = opts.api_style, opts.api_version, None
    ep = _entry(model, opts)
    if ep is not None:
        if ep.base_url:
            base, key, style = ep.base_url, ep.api_key or "", ep.api_style or "openai"
        else:
            key = ep.api_key or key
            style = ep.api_style or style
        version = ep.api_version or version
        deployment = ep.deployment
    if style == "azure":
        return Route(base.rstrip("/"), key, "azure", version, deployment or model)
    return Route(base.rstrip("/"), key)


def resolve_limits(model: str, opts: ModelClientOptions) -> RateLimits:
    """The rate budget `model` draws from: its `models.endpoints` entry's own when it sets `max_rpm`/`max_tpm`
    (a limit it leaves unset is the default's, unless the entry moves the model to another server), else the
    default `models.max_rpm`/`max_tpm` of its route."""
    ep = _entry(model, opts)
    if ep is None:
        return RateLimits(opts.max_rpm, opts.max_tpm)
    inherit = not ep.base_url
    rpm = ep.max_rpm if ep.max_rpm is not None else opts.max_rpm if inherit else None
    tpm = ep.max_tpm if ep.max_tpm is not None else opts.max_tpm if inherit else None
    own = ep.max_rpm is not None or ep.max_tpm is not None
    return RateLimits(rpm, tpm, ep.model if own else "")
