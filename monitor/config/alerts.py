"""The model of alerts/routes.yaml: receivers (Apprise URLs) and a routing tree.

    receivers:
      - name: desk-slack                   # lower-case letters, digits, '-', '_'; unique
        urls: ["slack://${SLACK_TOKEN_A}/${SLACK_TOKEN_B}/${SLACK_TOKEN_C}/#claims"]
        template: urgent                   # optional: alerts/templates/ override
        rate_limit: {count: 20, per: 1h}   # optional
    route:                                 # the root matches everything; it needs a receiver
      receiver: desk-email
      group_by: [claim]                    # default [claim]; inherited by children
      group_wait: 30s                      # group_* and repeat_interval are inherited
      routes:
        - matchers: ["relation =~ denial|corroboration", "score >= 70"]
          receiver: desk-slack
          continue: true                   # also try the next sibling routes

Secrets never appear in the file: a URL refers to ``${ENV_NAME}`` (``$$`` is a literal ``$``)
and :func:`resolve_urls` substitutes them at delivery time. Matchers (``label op value``)
are described in :mod:`monitor.config.matchers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from monitor.config.feeds import Seconds
from monitor.config.matchers import Matcher, parse_matcher
from monitor.config.yamlfile import line_of, load_config
from monitor.errors import ConfigError

# Apprise schemes the project expects to use; extend when a desk needs another channel.
KNOWN_SCHEMES = frozenset({
    "slack", "workflows", "workflow", "tgram", "mailto", "mailtos", "json", "jsons", "form",
    "forms", "xml", "xmls", "matrix", "matrixs", "discord", "mmost", "mmosts", "rocket", "rockets",
    "ntfy", "ntfys", "gotify", "gotifys", "signal", "signals", "zulip", "pover", "wxteams",
})
# Schemes Apprise no longer sends, with what to use instead.
RETIRED_SCHEMES = {
    "msteams": "msteams:// (Office 365 connectors) was retired by Microsoft and Apprise 2.3 no "
               "longer sends it; post to Teams through a Workflows webhook: "
               "workflows://HOST:PORT/WORKFLOW/SIGNATURE (the URL Teams gives, rewritten as "
               "Apprise's workflows:// form)",
}
GROUP_LABELS = ("claim", "relation", "source", "language")
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://")
# ``$$`` (literal dollar), ``${NAME}`` (a variable), or any other ``$`` (an error).
_DOLLAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$")


def _matcher(value: Any) -> Matcher:
    if not isinstance(value, str):
        raise ValueError(f"must be a string like 'relation = denial', got {value!r}")
    return parse_matcher(value)


RouteMatcher = Annotated[Matcher, PlainValidator(_matcher)]


class RateLimit(BaseModel):
    """At most ``count`` messages to the receiver in any window of ``per`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    count: int = Field(gt=0)
    per_seconds: Seconds = Field(alias="per", gt=0)


class ReceiverConfig(BaseModel):
    """A named destination: one or more Apprise URLs, possibly with ``${ENV}`` references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    # Emptiness is checked by hand: pydantic would also call a list whose only entry is
    # invalid "too short", hiding the real problem behind a false one.
    urls: tuple[str, ...]
    template: str | None = Field(default=None, pattern=_NAME)
    rate_limit: RateLimit | None = None

    @field_validator("urls")
    @classmethod
    def _apprise_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        if not urls:
            raise ValueError("is empty; give at least one Apprise URL")
        for index, url in enumerate(urls):
            scheme = _SCHEME.match(url)
            if not scheme:
                raise ValueError(f"url {index + 1}: must start with an Apprise scheme like "
                                 "slack:// or mailtos://")
            if scheme.group(1) in RETIRED_SCHEMES:
                raise ValueError(f"url {index + 1}: {RETIRED_SCHEMES[scheme.group(1)]}")
            if scheme.group(1) not in KNOWN_SCHEMES:
                raise ValueError(f"url {index + 1}: unknown scheme {scheme.group(1)!r} "
                                 f"(known: {', '.join(sorted(KNOWN_SCHEMES))})")
            if any(m.group(0) == "$" for m in _DOLLAR.finditer(url)):
                raise ValueError(f"url {index + 1}: a '$' must start ${{ENV_NAME}} "
                                 "(write $$ for a literal dollar)")
        return urls


class RouteConfig(BaseModel):
    """One node of the routing tree; absent settings are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    receiver: str | None = None
    matchers: tuple[RouteMatcher, ...] = ()
    continue_: bool = Field(default=False, alias="continue")
    group_by: tuple[str, ...] | None = None
    group_wait_seconds: Seconds | None = Field(default=None, alias="group_wait", ge=0)
    group_interval_seconds: Seconds | None = Field(default=None, alias="group_interval", gt=0)
    repeat_interval_seconds: Seconds | None = Field(default=None, alias="repeat_interval", gt=0)
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_by")
    @classmethod
    def _known_labels(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for label in value or ():
            if label not in GROUP_LABELS:
                raise ValueError(f"cannot group by {label!r} (use {', '.join(GROUP_LABELS)})")
        return value


class RootRoute(RouteConfig):
    """The root matches every match; it supplies the defaults every child inherits."""

    group_by: tuple[str, ...] | None = ("claim",)
    group_wait_seconds: Seconds | None = Field(default=30.0, alias="group_wait", ge=0)
    group_interval_seconds: Seconds | None = Field(default=300.0, alias="group_interval", gt=0)
    repeat_interval_seconds: Seconds | None = Field(
        default=4 * 3600.0, alias="repeat_interval", gt=0)

    @model_validator(mode="after")
    def _root_rules(self) -> RootRoute:
        if self.receiver is None:
            raise ValueError("the root route needs a 'receiver' (where unmatched alerts go)")
        if None in (self.group_by, self.group_wait_seconds, self.group_interval_seconds,
                    self.repeat_interval_seconds):
            raise ValueError("the root route's group_by and timings cannot be null")
        if self.matchers or self.continue_:
            raise ValueError("the root route matches everything: move 'matchers' and "
                             "'continue' into a child route")
        return self


class AlertsConfig(BaseModel):
    """The whole of alerts/routes.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: tuple[ReceiverConfig, ...]  # emptiness checked after validation (see urls)
    route: RootRoute

    def receiver(self, name: str) -> ReceiverConfig:
        """The receiver called ``name``; KeyError when there is none."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)


def resolve_urls(receiver: ReceiverConfig, environ: Mapping[str, str]) -> list[str]:
    """The receiver's URLs with ``${ENV}`` substituted from ``environ``.

    ConfigError names the receiver and every missing or empty variable; it never carries a
    value taken from the environment, nor the URL text around it.
    """
    missing = sorted({name for url in receiver.urls for name in _variables(url)
                      if not environ.get(name)})
    if missing:
        raise ConfigError(f"alerts: receiver {receiver.name!r}: environment variable(s) "
                          f"{', '.join(missing)} not set or empty")
    return [_DOLLAR.sub(lambda m: "$" if m.group(1) is None else environ[m.group(1)], url)
            for url in receiver.urls]


def _variables(url: str) -> list[str]:
    return [m.group(1) for m in _DOLLAR.finditer(url) if m.group(1)]


def load_alerts(path: Path) -> AlertsConfig:
    """Read and validate alerts/routes.yaml; ConfigError names file, route or receiver, field
    and line."""
    return load_config(path, _validate)


def _validate(path: Path, document: Any) -> AlertsConfig:
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with 'receivers:' and 'route:'")
    try:
        config = AlertsConfig.model_validate(document)
    except ValidationError as exc:
        problems = [_describe(path, document, error) for error in exc.errors()]
        raise ConfigError("\n".join(problems)) from exc
    _check_receivers(path, document, config)
    return config


def _check_receivers(path: Path, document: Any, config: AlertsConfig) -> None:
    if not config.receivers:
        raise ConfigError(_where(path, document, ["receivers"], "is empty; list at least one"))
    seen: dict[str, int] = {}
    for index, receiver in enumerate(config.receivers):
        if receiver.name in seen:
            raise ConfigError(_where(path, document, ["receivers", index, "name"],
                                     f"duplicate name {receiver.name!r}, first used by "
                                     f"receivers[{seen[receiver.name]}]"))
        seen[receiver.name] = index
    for location, route in _walk(config.route, ["route"]):
        if route.receiver is not None and route.receiver not in seen:
            raise ConfigError(_where(path, document, [*location, "receiver"],
                                     f"unknown receiver {route.receiver!r} "
                                     f"(known: {', '.join(sorted(seen))})"))


def _walk(route: RouteConfig, location: list[str | int]
          ) -> list[tuple[list[str | int], RouteConfig]]:
    found = [(location, route)]
    for index, child in enumerate(route.routes):
        found.extend(_walk(child, [*location, "routes", index]))
    return found


def _route_path(location: list[str | int]) -> str:
    """``["route", "routes", 1]`` -> ``root.routes[1]`` (how errors and RoutedTo name a node)."""
    text = "root"
    for step in location[1:]:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def _entry(document: Any, location: list[str | int]) -> tuple[str, list[str | int]]:
    """Split a location into the entry it names (a route or receiver) and the field below it."""
    if location[:1] == ["receivers"] and len(location) > 1 and isinstance(location[1], int):
        return _receiver_label(document, location[1]), location[2:]
    if location[:1] != ["route"]:
        return "", location
    end = 1
    while (len(location) > end + 1 and location[end] == "routes"
           and isinstance(location[end + 1], int)):
        end += 2
    return f"route {_route_path(location[:end])!r}", location[end:]


def _where(path: Path, document: Any, location: list[str | int], message: str,
           kind: str = "") -> str:
    missing = kind == "missing"  # name the missing key as a field of its parent
    entry, rest = _entry(document, location[:-1] if missing else location)
    rest = [*rest, location[-1]] if missing else rest
    field = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in rest).lstrip(".")
    what = f"unknown key {field!r}" if kind == "extra_forbidden" else (
        f"field {field!r}: {message}" if field else message)
    line = line_of(document, location)
    return f"{path}: {entry + ': ' if entry else ''}{what}" + (f" (line {line})" if line else "")


def _receiver_label(document: Any, index: int) -> str:
    try:
        name = document["receivers"][index].get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        name = None
    return f"receivers[{index}]" + (f" (name {name!r})" if isinstance(name, str) else "")


def _describe(path: Path, document: Any, error: ErrorDetails) -> str:
    location = [step for step in error["loc"] if isinstance(step, int | str)]
    message = str(error["msg"]).removeprefix("Value error, ")
    return _where(path, document, location, message, error["type"])
