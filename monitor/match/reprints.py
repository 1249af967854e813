"""Recognise near-identical reprints: one wire story carried by several outlets.

A match whose headline is nearly the same as that of an earlier match of the same claim (from
another item) is marked ``reprint_of`` that earlier item, so the alert layer can group them.
Memory is bounded: the last ``per_claim`` headlines of each claim, for ``window_seconds``.
This state is per process: with several matchers, reprints split across them are not seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

from rapidfuzz import fuzz

from monitor.match.text import normalized
from monitor.model import Match

REPRINT_RATIO = 90.0  # rapidfuzz token-sort ratio of the normalized headlines


@dataclass(frozen=True, slots=True)
class _Seen:
    item_id: str
    headline: str
    at: float


class ReprintTracker:
    """Thread-safe; ``mark`` returns the match, with ``reprint_of`` set when it is one."""

    def __init__(self, *, per_claim: int = 200, max_claims: int = 10_000,
                 window_seconds: float = 48 * 3600) -> None:
        self._per_claim, self._max_claims = per_claim, max_claims
        self._window = window_seconds
        self._recent: OrderedDict[str, deque[_Seen]] = OrderedDict()
        self._lock = threading.Lock()

    def mark(self, match: Match, now: float) -> Match:
        headline = normalized(match.item.title, match.item.language)
        with self._lock:
            recent = self._recent.setdefault(match.claim_id, deque(maxlen=self._per_claim))
            self._recent.move_to_end(match.claim_id)
            while len(self._recent) > self._max_claims:
                self._recent.popitem(last=False)
            original = self._original(recent, match.item.item_id, headline, now)
            recent.append(_Seen(match.item.item_id, headline, now))
        if original is None:
            return match
        return replace(match, evidence=replace(match.evidence, reprint_of=original))

    def _original(self, recent: deque[_Seen], item_id: str, headline: str, now: float
                  ) -> str | None:
        for seen in recent:  # oldest first: a reprint points at the first carrier
            if now - seen.at > self._window or seen.item_id == item_id or not headline:
                continue
            if fuzz.token_sort_ratio(seen.headline, headline) >= REPRINT_RATIO:
                return seen.item_id
        return None
