"""``monitor eval``: linking and stance measured on labelled public data sets.

Each function reads one data set in its published layout and returns a flat dict of scores.
Linking uses the production index and scorer with claims built from the data set; stance uses
:func:`monitor.match.stance.decide_relation` (cross-validated by claim where it learns).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ElementTree
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from monitor.config.claims import DEFAULT_THRESHOLD
from monitor.errors import ConfigError
from monitor.match.index import ClaimIndex
from monitor.match.labelled import claim_from_text, f1, fnc1_labels, fnc1_scores, vectors_for
from monitor.match.matcher import scored_candidates
from monitor.match.score import ItemText
from monitor.match.semantic import Embedder, Vectors, shared_embedder
from monitor.match.text import keys


def _item(text: str, language: str | None, body: str = "") -> ItemText:
    title = tuple(keys(text, language))
    return ItemText(title, title + tuple(keys(body, language)), language)


def embedder_for(semantic: bool) -> Embedder | None:
    """The production model (vectors cached on disk), or None to measure words alone."""
    return shared_embedder() if semantic else None


def ranked(index: ClaimIndex, item: ItemText, meaning_text: str = "",
           vector: Vectors | None = None) -> list[tuple[float, str]]:
    """(score, claim id) of every candidate, best first: the matcher's own scoring."""
    return [(score.value, index.claims[position].claim.id)
            for position, score in scored_candidates(index, item, meaning_text, vector=vector)]


def _safe_id(raw: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in raw.lower())[:80] or "x"


def emergent(path: Path, threshold: float = DEFAULT_THRESHOLD, semantic: bool = True,
             cross_validate: bool = False) -> dict[str, Any]:
    """Linking (every headline against every claim) and stance: the shipped relation model
    on this file, or with ``cross_validate`` models trained on the other claims' folds."""
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    texts = {_safe_id(r["claimId"]): r["claimHeadline"] for r in rows}
    embedder = embedder_for(semantic)
    index = ClaimIndex([claim_from_text(cid, text) for cid, text in texts.items()], embedder)
    headlines = [row["articleHeadline"] for row in rows]
    top1 = linked_right = linked = 0
    for row, vector in zip(rows, vectors_for(embedder, headlines), strict=True):
        ranking = ranked(index, _item(row["articleHeadline"], "en"), row["articleHeadline"],
                         vector)
        truth = _safe_id(row["claimId"])
        top1 += bool(ranking) and ranking[0][1] == truth
        passing = [cid for score, cid in ranking if score >= threshold]
        linked += len(passing)
        linked_right += truth in passing
    precision = linked_right / linked if linked else 0.0
    recall = linked_right / len(rows)
    from monitor.match.train_relation import emergent_stance

    folds = min(5, len(texts))  # grouped by claim: never more folds than claims
    stance = emergent_stance(path, cross_validate=cross_validate and folds >= 2,
                             folds=max(folds, 2))
    return {
        "dataset": "emergent", "headlines": len(rows), "claims": len(texts),
        "threshold": threshold, "semantic": semantic,
        "link_accuracy_at_1": round(top1 / len(rows), 4),
        "link_precision": round(precision, 4), "link_recall": round(recall, 4),
        "link_f1": round(f1(precision, recall), 4),
        "baseline_link_everything": {
            "link_precision": round(1 / len(texts), 4) if texts else 0.0, "link_recall": 1.0},
        "stance": stance,
    }


def paraphraser(path: Path, threshold: float = DEFAULT_THRESHOLD, semantic: bool = True,
                cross_validate: bool = False) -> dict[str, Any]:
    """Russian headline pairs: classes 0 and 1 should link, -1 should not.

    ``cross_validate`` adds the figure of a paraphrase threshold chosen on the data itself,
    honestly: 5 folds grouped by first headline, each scored at the threshold that gave the
    best F1 on the other four."""
    text = path.read_text(encoding="utf-8").replace("encoding='UTF8'", "encoding='UTF-8'")
    root = ElementTree.fromstring(text.encode("utf-8"))
    rows = [{v.get("name"): (v.text or "") for v in pair.iter("value")}
            for pair in root.iter("paraphrase")]
    embedder = embedder_for(semantic)
    if embedder is not None:
        embedder.embed_cached([claim_from_text("c", r.get("text_1", "")).text for r in rows],
                              passage=True)
    scores, positives = [], []
    seconds = [r.get("text_2", "") for r in rows]
    for values, vector in zip(rows, vectors_for(embedder, seconds), strict=True):
        index = ClaimIndex([claim_from_text("c", values.get("text_1", ""))], embedder)
        scored = scored_candidates(index, _item(values.get("text_2", ""), "ru"),
                                   values.get("text_2", ""), vector=vector)
        scores.append(scored[0][1].value if scored else -1.0)
        positives.append(values.get("class") in ("0", "1"))
    share = sum(positives) / len(rows) if rows else 0.0
    result = {"dataset": "paraphraser", "pairs": len(rows), "threshold": threshold,
              "semantic": semantic,
              **_link_figures([score >= threshold for score in scores], positives),
              "baseline_link_everything": {"precision": round(share, 4), "recall": 1.0,
                                           "f1": round(f1(share, 1.0), 4)}}
    if cross_validate:
        folds = [zlib.crc32(r.get("text_1", "").encode()) % 5 for r in rows]
        linked = [False] * len(rows)
        chosen = []
        for fold in range(5):
            train = [(s, p) for s, p, f in zip(scores, positives, folds, strict=True)
                     if f != fold]
            best = max(range(0, 101), key=lambda t: _link_figures(
                [s >= t for s, _ in train], [p for _, p in train])["f1"])
            chosen.append(best)
            for n, f in enumerate(folds):
                if f == fold:
                    linked[n] = scores[n] >= best
        result["cross_validated_threshold"] = {"thresholds": chosen,
                                               **_link_figures(linked, positives)}
    return result


def _link_figures(linked: Sequence[bool], positives: Sequence[bool]) -> dict[str, float]:
    tp = sum(a and b for a, b in zip(linked, positives, strict=True))
    precision = tp / sum(linked) if any(linked) else 0.0
    recall = tp / sum(positives) if any(positives) else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(f1(precision, recall), 4)}


def clef(folder: Path, split: str = "dev", semantic: bool = True) -> dict[str, Any]:
    """CLEF 2020 CheckThat! task 2: rank the verified claims for each tweet; MAP@5.

    Beside it, the words-alone ranking (no sentence vectors) as the baseline."""
    claims_file = folder / "verified_claims.docs.tsv"
    with claims_file.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    claims = [claim_from_text(f"v{r['']}", f"{r['vclaim']} {r['title']}") for r in rows]
    gold: dict[str, set[str]] = defaultdict(set)
    for line in (folder / split / "tweet-vclaim-pairs.qrels").read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "1":
            gold[parts[0]].add(f"v{parts[2]}")
    with (folder / split / "tweets.queries.tsv").open(encoding="utf-8") as handle:
        tweets = list(csv.DictReader(handle, delimiter="\t"))
    tweets = [t for t in tweets if gold.get(t[""])]

    def map_at_5(embedder: Embedder | None) -> float:
        index = ClaimIndex(claims, embedder)
        contents = [t["tweet_content"] for t in tweets]
        precisions = [
            _average_precision(
                [cid for _, cid in ranked(index, _item(content, "en"), content, vector)[:5]],
                gold[t[""]])
            for t, content, vector in zip(tweets, contents, vectors_for(embedder, contents),
                                          strict=True)
        ]
        return round(sum(precisions) / len(precisions), 4) if precisions else 0.0

    result: dict[str, Any] = {
        "dataset": "clef2020-task2", "split": split, "semantic": semantic,
        "queries": len(tweets), "verified_claims": len(rows),
        "map_at_5": map_at_5(embedder_for(semantic))}
    if semantic:
        result["baseline_words_alone_map_at_5"] = map_at_5(None)
    return result


def _average_precision(ranking: Sequence[str], relevant: set[str]) -> float:
    hits, total = 0, 0.0
    for rank, claim_id in enumerate(ranking, start=1):
        if claim_id in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), 5) if relevant else 0.0


def find_pair(folder: Path, names: Iterable[str]) -> tuple[Path, Path]:
    """FNC-1: the given stances and bodies files, or the single *_stances/*_bodies pair."""
    given = [folder / name for name in names]
    if len(given) == 2:
        return given[0], given[1]
    stances, bodies = sorted(folder.glob("*_stances.csv")), sorted(folder.glob("*_bodies.csv"))
    if len(stances) != 1 or len(bodies) != 1:
        raise ConfigError(f"{folder}: expected one *_stances.csv and one *_bodies.csv, found "
                          f"{len(stances)} and {len(bodies)}; name them as arguments")
    return stances[0], bodies[0]


_STANCE_EVALUATION = (
    "shipped body model, trained on FNC-1 train (in-sample there; held out by headline, body "
    "and story: python -m monitor.match.train_body_stance --data DIR --cv-only --link, which "
    "needs the train extra)")


def fnc1(folder: Path, names: Iterable[str] = (), threshold: float = DEFAULT_THRESHOLD,
         semantic: bool = True) -> dict[str, Any]:
    """FNC-1: related/unrelated from the link score, then the stance of related pairs.

    Each given pair is scored as the matcher scores a candidate (words, blended with the
    meaning of headline and body when ``semantic``); FNC-1 asks about pairs, not rankings.
    The stance is ``decide_relation``'s, whose body model has seen these very pairs: held-out
    figures come from ``train_body_stance --link``, which links and scores the same way.
    """
    stances_path, bodies_path = find_pair(folder, names)
    gold, predicted = fnc1_labels(stances_path, bodies_path, _fnc1_relation,
                                  threshold=threshold, embedder=embedder_for(semantic))
    return {"dataset": "fnc-1", "pairs": len(gold), "threshold": threshold,
            "semantic": semantic, **fnc1_scores(gold, predicted),
            "stance_evaluation": _STANCE_EVALUATION,
            "baseline_majority_class_unrelated": fnc1_scores(gold, ["unrelated"] * len(gold)),
            "baseline_link_everything_as_discuss": fnc1_scores(gold, ["discuss"] * len(gold))}


def _fnc1_relation(headline: str, body: str) -> str:
    from monitor.match.stance import decide_relation

    # FNC-1 bodies have no title: the body model reads the body itself.
    return decide_relation(headline, "", body, language="en").relation
