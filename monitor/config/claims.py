"""The model of claims.yaml: the disputed claims the desk tracks.

    claims:
      - id: lukashenko-generals-2022        # lower-case letters, digits, '-'; unique
        text: Lukashenko says Ukrainian generals asked him in 2022 to ...
        speaker: Alexander Lukashenko       # optional; their own repetition is a follow-up
        subject: Ukrainian generals         # optional: who it is about; their denial is a denial
        made_at: 2026-11-20                 # optional
        source_url: https://...             # optional
        texts: {ru: "...", uk: "..."}       # the claim in the wires' languages
        keywords:                           # groups of alternatives; an item must hit every group
          - [Lukashenko, Lukashenka, Лукашенко, Лукашенка]
          - [generals, генерал, генерал]
        exclude: [hockey]                   # an item with any of these is never linked
        threshold: 60                       # 0-100, the score a link needs (default 50: the
                                            # whole story; 76: only restatements of the claim)
        tags: [belarus, ukraine-war]
        expires: 2027-06-01                 # optional; after it the claim is not matched
        status: tracking                    # or retired
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.config.yamlfile import (
    check_unique_ids,
    describe_validation_error,
    load_config,
    sequence_entry_label,
)
from monitor.errors import ConfigError

# The default links every item on the claim's story: restatements, follow-ups, denials (on
# the desk set: link precision 0.89, recall 0.82). A claim that should link only items saying
# the same thing sets RESTATEMENT_THRESHOLD: chosen by 5-fold cross-validation on ParaPhraser's
# Russian headline pairs (same news vs. same topic: held-out precision 0.82, recall 0.94),
# where the default links 87% of pairs. Raising the default to it halves desk recall.
DEFAULT_THRESHOLD = 50.0
RESTATEMENT_THRESHOLD = 76.0


class ClaimConfig(BaseModel):
    """One tracked claim as written in claims.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    text: str = Field(min_length=10, max_length=2000)
    speaker: str | None = None
    subject: str | None = None  # who or what the claim is about: their own denial is a denial
    made_at: date | None = None
    source_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    texts: dict[str, str] = Field(default_factory=dict)
    keywords: tuple[tuple[str, ...], ...] = ()
    exclude: tuple[str, ...] = ()
    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=100)
    tags: tuple[str, ...] = ()
    expires: date | None = None
    status: Literal["tracking", "retired"] = "tracking"

    @field_validator("texts")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        for language, text in value.items():
            if not (2 <= len(language) <= 3 and language.isalpha() and language.islower()):
                raise ValueError(f"language {language!r} is not an ISO 639-1 code like 'ru'")
            if len(text.strip()) < 10:
                raise ValueError(f"text for {language!r} is too short to match on")
        return value

    @field_validator("keywords")
    @classmethod
    def _groups_not_empty(cls, value: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for index, group in enumerate(value):
            if not group or not all(term.strip() for term in group):
                raise ValueError(f"group {index} is empty or holds an empty term")
        return value

    def is_active(self, today: date) -> bool:
        return self.status == "tracking" and (self.expires is None or today <= self.expires)

    def predates(self, published_at: datetime | None) -> bool:
        """An item published before the claim was made is part of its background, not news
        about it (a 2022 story is no follow-up to a claim of November 2025). Undated items
        are news. The alerter and the desk both ask here."""
        return bool(self.made_at and published_at and published_at.date() < self.made_at)


class ClaimsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claims: tuple[ClaimConfig, ...] = ()


def load_claims(path: Path) -> tuple[ClaimConfig, ...]:
    """Read and validate claims.yaml; ConfigError names file, entry, field and line."""
    return load_config(path, _validate)


def _validate(path: Path, document: Any) -> tuple[ClaimConfig, ...]:
    if document is None:
        return ()
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'claims:' list at the top")
    try:
        parsed = ClaimsFile.model_validate(_plain(document))
    except ValidationError as exc:
        raise describe_validation_error(
            path, document, exc, sequence_entry_label("claims")) from exc
    check_unique_ids(path, document, "claims", [entry.id for entry in parsed.claims])
    return parsed.claims


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (dates stay dates)."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node

