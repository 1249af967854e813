"""The model of feeds.yaml: which wire feeds to poll, how often, in which language.

    defaults:            # optional, applied to every feed that does not set the key
      interval: 5m
    feeds:
      - id: ria-world    # lower-case letters, digits, '-' and '_'; unique
        source: RIA Novosti
        url: https://ria.ru/export/rss2/world/index.xml
        language: ru     # ISO 639-1; falls back to the document's own language
        interval: 5m     # seconds (300) or 90s / 5m / 2h
        tags: [ru, state-media]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from monitor.config.yamlfile import (
    check_unique_ids,
    describe_validation_error,
    load_config,
    sequence_entry_label,
)
from monitor.errors import ConfigError
from monitor.redact import redact_url

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MIN_INTERVAL_SECONDS = 1.0


def parse_duration_seconds(value: Any) -> Any:
    """Accept 300, 300.0, "300", "90s", "5m", "2h"; leave anything else for pydantic to reject."""
    if isinstance(value, bool):  # YAML's `yes`/`true` must not become one second
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 90s, 5m, 2h)")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 90s, 5m, 2h)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration_seconds)]

# URLs that check_http_url always accepts (tests/unit/test_config_feeds.py proves it): a
# lower-case http(s) scheme, a host of letters, digits, '-' and '.', a port under 10,000, and
# printable ASCII after it. Anything else is checked in full.
_PLAIN_HTTP_URL = re.compile(
    r"https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?(?::[0-9]{1,4})?(?:[/?#][!-~]*)?")


def check_http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; ValueError naming it if not."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {redact_url(value)!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL, got {redact_url(value)!r}")
    return value


class FeedConfig(BaseModel):
    """One wire feed to poll."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    url: str
    source: str = Field(min_length=1, max_length=200)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    interval_seconds: Seconds = Field(default=300.0, alias="interval")
    tags: tuple[str, ...] = ()
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if _PLAIN_HTTP_URL.fullmatch(value):  # half of validating 50,000 feeds was urlsplit
            return value
        return check_http_url(value)

    @field_validator("interval_seconds")
    @classmethod
    def _positive_interval(cls, value: float) -> float:
        if value < MIN_INTERVAL_SECONDS:
            raise ValueError(f"must be at least {MIN_INTERVAL_SECONDS:g} second, got {value:g}")
        return value


class FeedDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Seconds | None = None
    language: str | None = None


class FeedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: FeedDefaults = FeedDefaults()
    # Emptiness is checked after validation: pydantic would also report a list whose only
    # entry is invalid as "too short", hiding the real problem behind a false one.
    feeds: tuple[FeedConfig, ...]


def _apply_defaults(document: Any) -> Any:
    """Copy ``defaults`` into each feed entry that lacks the key (before validation)."""
    if not isinstance(document, dict):
        return document
    defaults = document.get("defaults") or {}
    feeds = document.get("feeds")
    if not isinstance(defaults, dict) or not isinstance(feeds, list):
        return document
    merged = [
        {**{k: v for k, v in defaults.items() if v is not None}, **entry}
        if isinstance(entry, dict) else entry
        for entry in feeds
    ]
    return {**document, "feeds": merged}


def load_feeds(path: Path) -> tuple[FeedConfig, ...]:
    """Read and validate feeds.yaml; ConfigError names file, entry, field and line."""
    return load_config(path, _validate)


def _validate(path: Path, document: Any) -> tuple[FeedConfig, ...]:
    if document is None:
        raise ConfigError(f"{path}: file is empty; expected a 'feeds:' list")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'feeds:' list at the top")
    try:
        parsed = FeedsFile.model_validate(_apply_defaults(document))
    except ValidationError as exc:
        raise describe_validation_error(path, document, exc, sequence_entry_label("feeds")) from exc
    if not parsed.feeds:
        raise ConfigError(f"{path}: field 'feeds': is empty; list at least one feed")
    check_unique_ids(path, document, "feeds", [entry.id for entry in parsed.feeds])
    return parsed.feeds

