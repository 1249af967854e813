"""``monitor check`` for alert templates: render every template routes.yaml can use, once.

What a routing file can use: each relation in each channel format its receivers' URLs have,
through the receiver's own template when it names one. Each is rendered with a made-up group
(two outlets, one a reprint of the other, so loops and optional parts run), from the override
folder or the packaged defaults exactly as the alert stage would. A template that is missing,
does not compile or fails to render is a ConfigError naming its file, the line when Jinja2
knows it, and the error: found by ``check``, not by every alert being dead-lettered at run time.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import TemplateNotFound, TemplateSyntaxError

from monitor.alerting import render as render_module
from monitor.alerting.render import (
    RELATIONS,
    AlertGroup,
    channel_for_url,
    render,
    select_template,
)
from monitor.config.alerts import AlertsConfig, ReceiverConfig
from monitor.config.claims import ClaimConfig
from monitor.errors import ConfigError
from monitor.model import Evidence, Item, Match

SAMPLE_CLAIM = ClaimConfig(
    id="template-check", text="A made-up claim that renders every alert template once",
    speaker="A. Speaker", source_url="https://example.org/claim", tags=("check",))


@dataclass(frozen=True, slots=True)
class TemplateReport:
    rendered: int  # renderings that succeeded (template x relation x format)
    overrides: tuple[str, ...]  # files in the override folder
    warnings: tuple[str, ...]


def check_templates(alerts: AlertsConfig, template_dir: Path) -> TemplateReport:
    """Render every template ``alerts`` can use; ConfigError listing each broken one."""
    problems: dict[str, str] = {}  # where and what -> with the context: each error once
    warnings = _unused_overrides(alerts, template_dir)
    rendered = 0
    for receiver in alerts.receivers:
        formats = _formats(receiver)
        problems |= dict.fromkeys(_missing_own_template(receiver, formats, template_dir,
                                                        warnings), "")
        for fmt in formats:
            for relation in RELATIONS:
                problem = _render_once(receiver, fmt, relation, template_dir)
                rendered += problem is None
                if problem is not None:
                    problems.setdefault(problem[0], problem[1])
    if problems:
        raise ConfigError("\n".join(what + context for what, context in problems.items()))
    return TemplateReport(rendered, _overrides(template_dir), tuple(warnings))


def _formats(receiver: ReceiverConfig) -> list[str]:
    found = [channel_for_url(url) for url in receiver.urls]
    return [fmt for fmt in dict.fromkeys(found) if fmt != "json"]  # json has no template


def _render_once(receiver: ReceiverConfig, fmt: str, relation: str,
                 template_dir: Path) -> tuple[str, str] | None:
    """None, or the error (file, line, what) and the rendering that met it."""
    try:
        render(sample_group(relation), fmt, template_dir=template_dir,
               template=receiver.template)
    except Exception as exc:  # a template's expressions can raise anything
        where = _where(exc, receiver, fmt, relation, template_dir)
        what = (f"{exc.name} is neither in {template_dir} nor among the packaged templates "
                f"({render_module.DEFAULT_TEMPLATES})" if isinstance(exc, TemplateNotFound)
                else str(exc))
        return (f"{where}: {type(exc).__name__}: {what}",
                f" (rendering a {relation} for receiver {receiver.name!r}, format {fmt})")
    return None


def _where(exc: Exception, receiver: ReceiverConfig, fmt: str, relation: str,
           template_dir: Path) -> str:
    """``file: line N`` of the error: from Jinja2's error, else its template frames."""
    if isinstance(exc, TemplateSyntaxError):
        return f"{exc.filename or exc.name}: line {exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if frames:  # Jinja2 rewrites tracebacks so that template lines appear as frames
        return f"{frames[-1].filename}: line {frames[-1].lineno}"
    if isinstance(exc, TemplateNotFound):  # the template itself (an include names its file)
        return str(template_dir / str(exc.name))
    template = select_template(template_dir, fmt, relation, receiver.template)
    return str(template.filename or template.name)


def _missing_own_template(receiver: ReceiverConfig, formats: list[str], template_dir: Path,
                          warnings: list[str]) -> list[str]:
    """A receiver's own template that exists for none of its formats is a typo; for some of
    them, the default serves the others (worth a warning)."""
    if receiver.template is None or not formats:
        return []
    missing = [f"{receiver.template}.{fmt}.j2" for fmt in formats
               if not (template_dir / f"{receiver.template}.{fmt}.j2").is_file()]
    message = (f"{template_dir}: receiver {receiver.name!r} names template "
               f"{receiver.template!r} but there is no {', '.join(missing)}")
    if len(missing) == len(formats):
        return [message]
    if missing:
        warnings.append(message + "; the relation's default is used for that format")
    return []


def _overrides(template_dir: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in template_dir.glob("*.j2"))) if template_dir.is_dir() \
        else ()


def _unused_overrides(alerts: AlertsConfig, template_dir: Path) -> list[str]:
    """Files in the override folder that no lookup reaches (a misspelt name, usually)."""
    defaults = {p.name for p in render_module.DEFAULT_TEMPLATES.glob("*.j2")}
    own = {r.template for r in alerts.receivers if r.template}
    return [f"{template_dir / name}: not used: neither a packaged template's name nor "
            f"<template>.<format>.j2 of a receiver's template ({', '.join(sorted(own)) or '-'})"
            for name in _overrides(template_dir)
            if name not in defaults and name.split(".", 1)[0] not in own]


def sample_group(relation: str) -> AlertGroup:
    """Two outlets of ``relation``, the second a reprint of the first."""
    moment = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    item = Item(item_id="check-1", feed_id="check", source="First Outlet",
                url="https://first.example/story?a=1&b=2", guid=None,
                title="Officials deny the made-up claim", summary="A summary of the story.",
                language="en", published_at=moment, fetched_at=moment, content_hash="check")
    first = Match(match_id="check-1", claim_id=SAMPLE_CLAIM.id, item=item, score=88.0,
                  relation=relation, evidence=Evidence(("claim", "made-up"), "main", "deny",
                                                       0.9),
                  matcher_version="check")
    second = replace(first, match_id="check-2",
                     item=replace(item, item_id="check-2", source="Second Outlet"),
                     evidence=replace(first.evidence, reprint_of="check-1"))
    return AlertGroup(SAMPLE_CLAIM, (first, second))
