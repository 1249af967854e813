"""``monitor eval desk``: the team's own labelled cases, scored through the production matcher.

A desk set (``bench/desk/*.yaml``) holds claims written as an editor would and cases that
each name a real feed item by reference (feed file; item id, URL or exact title) with the relation
a person judged: corroboration, denial, follow-up or unrelated (a hard negative). The item
text is read at run time from the feed documents in ``../shared/feeds/real`` (other people's
data: never copied into the repository). Every item goes through ``match_item`` against all
the set's claims, exactly as the match stage runs it; a case counts as linked when the match
stage would have linked the item to the case's claim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config.claims import ClaimConfig
from monitor.errors import ConfigError
from monitor.feeds.parse import FeedSource, parse_feed
from monitor.match.index import ClaimIndex
from monitor.match.matcher import match_item
from monitor.match.semantic import shared_embedder
from monitor.match.stance_features import guess_language
from monitor.model import Item, Match

RELATIONS = ("denial", "corroboration", "follow-up")
LABELS = (*RELATIONS, "unrelated")
NOT_LINKED = "unrelated"


class DeskCase(BaseModel):
    """One judged (claim, item) pair as written in a desk file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: str
    feed: str = Field(pattern=r"^[^/\\]+$")  # a file name inside the feeds folder
    item: str
    relation: str = Field(pattern=r"^(denial|corroboration|follow-up|unrelated)$")
    why: str = ""


class DeskFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claims: tuple[ClaimConfig, ...] = ()
    cases: tuple[DeskCase, ...] = ()


@dataclass(frozen=True, slots=True)
class DeskSet:
    claims: tuple[ClaimConfig, ...]
    cases: tuple[DeskCase, ...]


def load_desk(path: Path) -> DeskSet:
    """A desk file, or every ``*.yaml`` in a folder; claim ids must be unique across files."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path}: no *.yaml desk files")
    claims: list[ClaimConfig] = []
    cases: list[DeskCase] = []
    for file in files:
        try:
            parsed = DeskFile.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"{file}: not a desk file: {exc}") from exc
        claims += parsed.claims
        cases += parsed.cases
    ids = Counter(claim.id for claim in claims)
    if doubled := sorted(cid for cid, n in ids.items() if n > 1):
        raise ConfigError(f"{path}: claim ids defined twice: {', '.join(doubled)}")
    if unknown := sorted({case.claim for case in cases} - set(ids)):
        raise ConfigError(f"{path}: cases name undefined claims: {', '.join(unknown)}")
    return DeskSet(tuple(claims), tuple(cases))


def read_items(feeds: Path, names: Iterable[str]) -> dict[tuple[str, str], Item]:
    """Every item of the named feed documents, by (file, item id), (file, URL) and
    (file, title).

    An item without a language of its own gets the one its text suggests, as a feed entry in
    feeds.yaml would give it."""
    fetched_at = datetime.now(UTC)
    found: dict[tuple[str, str], Item] = {}
    for name in sorted(set(names)):
        document = feeds / name
        if not document.is_file():
            raise ConfigError(f"{document}: feed document named by the desk set not found")
        parsed = parse_feed(document.read_bytes(), None,
                            FeedSource(name, name.split("__")[0], None), fetched_at)
        for item in parsed.items:
            if not item.language:
                item = replace(item, language=guess_language(f"{item.title} {item.summary}"))
            found[(name, item.item_id)] = item
            for other_name in (item.url, item.title):
                if other_name:
                    found.setdefault((name, other_name), item)
    return found


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case and what the matcher made of it."""

    case: DeskCase
    language: str
    predicted: str  # a relation, or "unrelated" when not linked
    match: Match | None


def run(desk: DeskSet, feeds: Path, semantic: bool = True) -> list[Outcome]:
    items = read_items(feeds, (case.feed for case in desk.cases))
    missing = [f"{c.feed}: {c.item}" for c in desk.cases if (c.feed, c.item) not in items]
    if missing:
        raise ConfigError(f"{len(missing)} desk case(s) name items not in their feed: "
                          + "; ".join(missing[:5]))
    index = ClaimIndex(list(desk.claims), shared_embedder() if semantic else None)
    # Claims are scored as the stage scores them; made_at bounds alerts, not links.
    today = date.today()
    matches: dict[tuple[str, str], dict[str, Match]] = {}
    outcomes = []
    for case in desk.cases:
        key = (case.feed, case.item)
        item = items[key]
        if key not in matches:
            matches[key] = {m.claim_id: m for m in match_item(item, index, today=today)}
        match = matches[key].get(case.claim)
        outcomes.append(Outcome(case, item.language or "?",
                                match.relation if match else NOT_LINKED, match))
    return outcomes


def score(path: Path, feeds: Path, semantic: bool = True) -> dict[str, Any]:
    """Link precision/recall and per-relation precision, recall and F1, with the trivial
    baselines beside them: link everything, and link everything as the majority relation."""
    desk = load_desk(path)
    outcomes = run(desk, feeds, semantic)
    gold = [o.case.relation for o in outcomes]
    predicted = [o.predicted for o in outcomes]
    related = [g for g in gold if g != NOT_LINKED]
    majority = Counter(related).most_common(1)[0][0] if related else "follow-up"
    languages = Counter(o.language for o in outcomes)
    result: dict[str, Any] = {
        "dataset": "desk", "path": str(path), "semantic": semantic,
        "claims": len(desk.claims), "cases": len(outcomes),
        "gold": dict(Counter(gold)), "languages": dict(languages),
        **_figures(gold, predicted),
        "baseline_link_everything_as_majority": {
            "majority_relation": majority,
            **_figures(gold, [majority] * len(gold)),
        },
        "by_language": {
            language: _figures([o.case.relation for o in outcomes if o.language == language],
                               [o.predicted for o in outcomes if o.language == language])
            for language in sorted(languages)
        },
        "uncertain": sum(bool(o.match and o.match.evidence.uncertain) for o in outcomes),
        "wrong_denials": [_explain(o) for o in outcomes
                          if o.predicted == "denial" and o.case.relation != "denial"],
    }
    return result


def _figures(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    pairs = list(zip(gold, predicted, strict=True))
    linked = [(g, p) for g, p in pairs if p != NOT_LINKED]
    related = [(g, p) for g, p in pairs if g != NOT_LINKED]
    right_links = sum(g != NOT_LINKED for g, _ in linked)
    link_p = right_links / len(linked) if linked else 0.0
    link_r = right_links / len(related) if related else 0.0
    per_relation = {}
    for relation in RELATIONS:
        tp = sum(g == p == relation for g, p in pairs)
        guessed = sum(p == relation for p in predicted)
        actual = sum(g == relation for g in gold)
        precision = tp / guessed if guessed else 0.0
        recall = tp / actual if actual else 0.0
        per_relation[relation] = {"precision": round(precision, 4), "recall": round(recall, 4),
                                  "f1": round(_f1(precision, recall), 4),
                                  "predicted": guessed, "gold": actual}
    both = [(g, p) for g, p in linked if g != NOT_LINKED]
    return {
        "link_precision": round(link_p, 4), "link_recall": round(link_r, 4),
        "link_f1": round(_f1(link_p, link_r), 4),
        "relation": per_relation,
        "relation_macro_f1": round(sum(r["f1"] for r in per_relation.values()) / 3, 4),
        # The relation alone: of the related cases the matcher linked, how many it named right.
        "relation_accuracy_when_linked": round(sum(g == p for g, p in both) / len(both), 4)
        if both else 0.0,
    }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _explain(outcome: Outcome) -> dict[str, str]:
    evidence = outcome.match.evidence if outcome.match else None
    return {"claim": outcome.case.claim, "feed": outcome.case.feed, "item": outcome.case.item,
            "gold": outcome.case.relation,
            "title": outcome.match.item.title if outcome.match else "",
            "cue": evidence.relation_cue if evidence else ""}
