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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from monitor.config.claims import DEFAULT_THRESHOLD, ClaimConfig
from monitor.errors import ConfigError
from monitor.match.index import ClaimIndex
from monitor.match.matcher import blend, scored_candidates
from monitor.match.score import ItemText, score_claim
from monitor.match.semantic import Embedder, Vectors, shared_embedder
from monitor.match.text import keys

csv.field_size_limit(10_000_000)  # FNC-1 bodies are long


def _item(text: str, language: str | None, body: str = "") -> ItemText:
    title = tuple(keys(text, language))
    return ItemText(title, title + tuple(keys(body, language)), language)


def embedder_for(semantic: bool) -> Embedder | None:
    """The production model (vectors cached on disk), or None to measure words alone."""
    return shared_embedder() if semantic else None


def vectors_for(embedder: Embedder | None, texts: Sequence[str]) -> list[Vectors | None]:
    """Every query text embedded up front, in batches and cached, so that re-running an
    evaluation costs seconds; the matcher still decides per item whether to use its vector."""
    if embedder is None:
        return [None] * len(texts)
    return list(embedder.embed_cached(texts))


def ranked(index: ClaimIndex, item: ItemText, meaning_text: str = "",
           vector: Vectors | None = None) -> list[tuple[float, str]]:
    """(score, claim id) of every candidate, best first: the matcher's own scoring."""
    return [(score.value, index.claims[position].claim.id)
            for position, score in scored_candidates(index, item, meaning_text, vector=vector)]


def _claim(claim_id: str, text: str) -> ClaimConfig:
    return ClaimConfig(id=claim_id, text=text if len(text) >= 10 else text.ljust(10, "."))


def _safe_id(raw: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in raw.lower())[:80] or "x"


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def emergent(path: Path, threshold: float = DEFAULT_THRESHOLD, semantic: bool = True,
             cross_validate: bool = False) -> dict[str, Any]:
    """Linking (every headline against every claim) and stance: the shipped relation model
    on this file, or with ``cross_validate`` models trained on the other claims' folds."""
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    texts = {_safe_id(r["claimId"]): r["claimHeadline"] for r in rows}
    embedder = embedder_for(semantic)
    index = ClaimIndex([_claim(cid, text) for cid, text in texts.items()], embedder)
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
        "link_f1": round(_f1(precision, recall), 4),
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
        embedder.embed_cached([_claim("c", r.get("text_1", "")).text for r in rows],
                              passage=True)
    scores, positives = [], []
    seconds = [r.get("text_2", "") for r in rows]
    for values, vector in zip(rows, vectors_for(embedder, seconds), strict=True):
        index = ClaimIndex([_claim("c", values.get("text_1", ""))], embedder)
        scored = scored_candidates(index, _item(values.get("text_2", ""), "ru"),
                                   values.get("text_2", ""), vector=vector)
        scores.append(scored[0][1].value if scored else -1.0)
        positives.append(values.get("class") in ("0", "1"))
    share = sum(positives) / len(rows) if rows else 0.0
    result = {"dataset": "paraphraser", "pairs": len(rows), "threshold": threshold,
              "semantic": semantic,
              **_link_figures([score >= threshold for score in scores], positives),
              "baseline_link_everything": {"precision": round(share, 4), "recall": 1.0,
                                           "f1": round(_f1(share, 1.0), 4)}}
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
            "f1": round(_f1(precision, recall), 4)}


def clef(folder: Path, split: str = "dev", semantic: bool = True) -> dict[str, Any]:
    """CLEF 2020 CheckThat! task 2: rank the verified claims for each tweet; MAP@5.

    Beside it, the words-alone ranking (no sentence vectors) as the baseline."""
    claims_file = folder / "verified_claims.docs.tsv"
    with claims_file.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    claims = [_claim(f"v{r['']}", f"{r['vclaim']} {r['title']}") for r in rows]
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


_FNC_LABELS = {"agree": "corroboration", "disagree": "denial", "discuss": "follow-up"}
_FNC_BACK = {relation: label for label, relation in _FNC_LABELS.items()}


def fnc1(folder: Path, names: Iterable[str] = (), threshold: float = DEFAULT_THRESHOLD,
         semantic: bool = True, relation_of: Callable[[str, str], str] | None = None
         ) -> dict[str, Any]:
    """FNC-1: related/unrelated from the link score, then the stance of related pairs.

    Each given pair is scored as the matcher scores a candidate (words, blended with the
    meaning of headline and body when ``semantic``); FNC-1 asks about pairs, not rankings.
    ``relation_of(headline, body)`` replaces ``decide_relation`` (cross-validated predictions
    from ``train_body_stance``: the shipped model has seen these very pairs).
    """
    relation_of = relation_of or _fnc1_relation

    stances_path, bodies_path = find_pair(folder, names)
    with bodies_path.open(encoding="utf-8") as handle:
        bodies = {row["Body ID"]: row["articleBody"] for row in csv.DictReader(handle)}
    with stances_path.open(encoding="utf-8") as handle:
        pairs = list(csv.DictReader(handle))
    headlines = sorted({row["Headline"] for row in pairs})
    embedder = embedder_for(semantic)
    index = ClaimIndex([_claim(f"h{n}", text) for n, text in enumerate(headlines)], embedder)
    position = {text: n for n, text in enumerate(headlines)}
    body_items = {bid: _body_item(text) for bid, text in bodies.items()}
    body_vectors = dict(zip(bodies, vectors_for(embedder, list(bodies.values())), strict=True))
    gold, predicted = [], []
    for row in pairs:
        claim_at = position[row["Headline"]]
        score = score_claim(index.claims[claim_at], body_items[row["Body ID"]], index.weight)
        vector = body_vectors[row["Body ID"]]
        if score is not None and index.vectors is not None and vector is not None:
            score = blend(score, float(index.vectors.matrix[claim_at] @ vector))
        label = "unrelated"
        if score is not None and score.value >= threshold:
            label = _FNC_BACK[relation_of(row["Headline"], bodies[row["Body ID"]])]
        gold.append(row["Stance"])
        predicted.append(label)
    stance = ("given predictions" if relation_of is not _fnc1_relation else
              "shipped body model, trained on FNC-1 train (in-sample there; held out by "
              "headline, body and story: python -m monitor.match.train_body_stance "
              "--data DIR --cv-only --link, which needs the train extra)")
    return {"dataset": "fnc-1", "pairs": len(pairs), "threshold": threshold,
            "semantic": semantic, **_fnc_scores(gold, predicted), "stance_evaluation": stance,
            "baseline_majority_class_unrelated": _fnc_scores(gold, ["unrelated"] * len(gold)),
            "baseline_link_everything_as_discuss": _fnc_scores(gold, ["discuss"] * len(gold))}


def _fnc1_relation(headline: str, body: str) -> str:
    from monitor.match.stance import decide_relation

    # FNC-1 bodies have no title: the body model reads the body itself.
    return decide_relation(headline, "", body, language="en").relation


def _body_item(text: str) -> ItemText:
    body = tuple(keys(text, "en"))
    return ItemText(body[:40], body, "en")


def _fnc_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    score = maximum = 0.0
    for truth, guess in zip(gold, predicted, strict=True):
        maximum += 0.25 if truth == "unrelated" else 1.0
        if (truth == "unrelated") == (guess == "unrelated"):
            score += 0.25
            if truth != "unrelated" and truth == guess:
                score += 0.75
    related_right = sum((t == "unrelated") == (p == "unrelated")
                        for t, p in zip(gold, predicted, strict=True))
    f1s = []
    for label in ("agree", "disagree", "discuss", "unrelated"):
        tp = sum(t == p == label for t, p in zip(gold, predicted, strict=True))
        guessed = sum(p == label for p in predicted)
        actual = sum(t == label for t in gold)
        f1s.append(_f1(tp / guessed if guessed else 0.0, tp / actual if actual else 0.0))
    return {"fnc_score": round(score / maximum, 4),
            "relatedness_accuracy": round(related_right / len(gold), 4),
            "macro_f1": round(sum(f1s) / len(f1s), 4)}
