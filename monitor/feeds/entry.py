"""The fields of one feed entry that Items are made from, whichever parser read them.

Both parse paths (feedparser, and the fast path for well-formed RSS and Atom in
``wellformed.py``) produce these; ``parse.py`` alone turns them into Items, so the two paths
cannot differ in normalization, only in what they read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawEntry:
    link: str | None
    guid: str | None
    title: str | None
    summary_html: str  # the summary, else the first non-blank content: HTML or plain text
    # published, updated, created: the first one that converts is the item's date
    times: tuple[time.struct_time | None, ...]


@dataclass(frozen=True, slots=True)
class RawDocument:
    entries: tuple[RawEntry, ...]
    language: str | None  # as the document states it ("ru-RU"), not yet reduced
    encoding: str | None
    warning: str | None
