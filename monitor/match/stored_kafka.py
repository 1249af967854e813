"""Kafka mode's stored items for a backtest: the items topic within its retention, with the
features the match stages wrote to the compacted ``monitor.item-features`` topic.

Why a compacted topic and not a file per matcher: the match stage writes an item's features in
the same transaction as its matches (one code path, :class:`monitor.match.stage.MatchStage`),
so they exist exactly when the item was matched, whichever matcher did it, and a backtest can
run on any host. Compaction keeps the latest version per item, so the topic does not grow with
re-issued stories. An item on the items topic without features here (matched before features
were kept, or not matched yet) gets them computed on the fly; a stored version other than the
item's is recomputed by the backtest (:func:`monitor.match.backtest._needs_refeature`).

Both topics are read whole into memory (read_committed, to their end as they were when
asked): about 1.2 KB an item with vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from monitor.bus.alert_topics import read_topic, write_keyed
from monitor.config.settings import KafkaSettings
from monitor.errors import InvalidInputError
from monitor.match.features import FEATURES_SCHEMA, FeatureChunk, ItemFeatures, encode_features
from monitor.match.features import items_features as compute_features
from monitor.match.semantic import DIMENSIONS, Embedder
from monitor.match.stored import CHUNK_ITEMS, EMBED_BATCH
from monitor.model import Item, Match, decode_item, decode_match, encode_match


class KafkaStoredItems:
    """See the module doc."""

    def __init__(self, settings: KafkaSettings, embedder: Embedder | None) -> None:
        self._settings, self._embedder = settings, embedder
        self._items: dict[str, bytes] | None = None  # item_id -> latest version in retention

    def count(self, since: float) -> int:
        del since  # the topic's records carry the item's time only inside the features
        return len(self._read_items())

    def chunks(self, since: float) -> Iterator[FeatureChunk]:
        del since  # the backtest filters on each item's fetched_at
        stored = {r.key.decode("utf-8"): r.value
                  for r in read_topic(self._settings, self._settings.item_features_topic)
                  if r.key is not None and r.value[:1] == bytes([FEATURES_SCHEMA])}
        ids = list(self._read_items())
        for start in range(0, len(ids), CHUNK_ITEMS):
            part = ids[start:start + CHUNK_ITEMS]
            payloads = [stored[i] for i in part if i in stored]
            if payloads:
                yield FeatureChunk.of(payloads, DIMENSIONS)
            yield from self._computed([i for i in part if i not in stored])

    def items_of(self, features: Sequence[ItemFeatures]) -> Mapping[str, Item]:
        items = self._read_items()
        return {f.feature_id: decode_item(items[f.item_id]) for f in features
                if f.item_id in items}

    def refeature(self, items: Sequence[Item]) -> list[ItemFeatures]:
        return compute_features(items, self._embedder)

    def apply(self, matches: Sequence[Match]) -> int:
        present = set()
        for record in read_topic(self._settings, self._settings.matches_topic):
            if record.key in {m.claim_id.encode() for m in matches}:
                try:
                    present.add(decode_match(record.value).match_id)
                except InvalidInputError:
                    continue  # the desk and the alerter skip it too
        new = [m for m in matches if m.match_id not in present]
        write_keyed(self._settings, self._settings.matches_topic,
                    [(m.claim_id.encode(), encode_match(m)) for m in new])
        return len(new)

    def close(self) -> None:
        """Nothing held open: each read opens and closes its consumer."""

    def _read_items(self) -> dict[str, bytes]:
        if self._items is None:
            self._items = {r.key.decode("utf-8"): r.value
                           for r in read_topic(self._settings, self._settings.items_topic)
                           if r.key is not None}
        return self._items

    def _computed(self, ids: Sequence[str]) -> Iterator[FeatureChunk]:
        items = []
        for item_id in ids:
            try:
                items.append(decode_item(self._read_items()[item_id]))
            except InvalidInputError:
                continue  # the match stage set it aside as a dead letter
        for start in range(0, len(items), EMBED_BATCH):
            features = self.refeature(items[start:start + EMBED_BATCH])
            yield FeatureChunk.of([encode_features(f) for f in features], DIMENSIONS)
