"""Real captured feeds (../shared/feeds/real) served over real HTTP, through the whole poller."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.bus.embedded import EmbeddedItemLog
from monitor.config.feeds import FeedConfig
from monitor.feeds.fetch import Fetcher, FetchLimits
from monitor.feeds.parse import TextLimits
from monitor.feeds.poller import FeedPoller
from monitor.feeds.schedule import SchedulePolicy
from monitor.feeds.state import SQLitePollState
from monitor.metrics import Metrics, PollOutcome
from monitor.model import Item
from monitor.store import Database
from tests.support.feed_server import LOOPBACK, FeedServer


@pytest.fixture
def poll_file(tmp_path: Path, feed_server: FeedServer, real_feeds: Path):
    db = Database(tmp_path / "state.sqlite3")
    item_log = EmbeddedItemLog(db)
    poller = FeedPoller(
        Fetcher(FetchLimits(user_agent="monitor-tests/1", timeout_seconds=5,
                            allowed_networks=LOOPBACK)),
        SQLitePollState(db), item_log, Metrics(CollectorRegistry()),
        policy=SchedulePolicy(), text_limits=TextLimits(), bus_name="embedded",
        rng=random.Random(1),
    )

    def poll(name: str, content_type: str = "application/xml", **options: object
             ) -> tuple[PollOutcome, list[Item]]:
        feed_id = name.split("__")[0].replace("_", "-")[:60] or "feed"
        feed_server.set_file(f"/{name}", real_feeds / name, content_type=content_type, **options)
        before = item_log.count()
        feed = FeedConfig.model_validate(
            {"id": feed_id, "url": feed_server.url(f"/{name}"), "source": feed_id})
        result = poller.poll(feed)
        return result.outcome, [item for _, item in item_log.read_after(0)][before:]

    yield poll
    db.close()


@pytest.mark.parametrize(
    ("name", "content_type", "expected_title"),
    [
        # ibash.org.ru declares windows-1251 in its XML declaration.
        pytest.param("ibash_org_ru__encoding_WINDOWS-1251.xml", "application/xml",
                     "Цитата #17703", id="windows-1251"),
        # oren.ru: windows-1251 again, converted by iconv upstream.
        pytest.param("oren_ru__iconv.xml", "application/xml",
                     "В Бузулуке главные стройплощадки – детсад и Ледовый дворец",
                     id="cp1251-iconv"),
        # feedparser's own test: KOI8-R with no encoding declared anywhere (chardet finds it).
        pytest.param("feedparser-tests__illformed_chardet_koi8r.xml", "application/xml",
                     "Как пережить новогоднюю ночь", id="koi8-r-undeclared"),
        # Le Cercle Psy: ISO-8859-1 bytes, no declaration; the HTTP charset tells.
        pytest.param("lecerclepsy__no_encoding_ISO-8859-1.xml",
                     "application/rss+xml; charset=iso-8859-1",
                     "Perturbateurs endocriniens : quels effets sur le cerveau ?",
                     id="latin-1-http"),
        pytest.param("jn_pt__encoding.rss", "application/xml",
                     "Mãe de utente é a nova presidente da Raríssimas", id="latin-1-declared"),
        # Yandex served UTF-8 that had been encoded twice; ftfy repairs it.
        pytest.param("yandex_news__Rss20YandexRussia.xml", "application/xml",
                     "В Москве из-за сильных морозов объявлен «оранжевый» уровень опасности",
                     id="double-encoded-utf8"),
    ],
)
def test_encodings_come_out_as_correct_text(poll_file, name: str, content_type: str,
                                            expected_title: str) -> None:
    outcome, items = poll_file(name, content_type)
    assert outcome is PollOutcome.NEW_ITEMS
    assert items[0].title == expected_title


def test_gzip_feeds_in_both_forms(poll_file) -> None:
    # Meduza captured gzip on disk: served raw (no Content-Encoding) it must still be read.
    outcome, raw = poll_file("meduza__meduza.xml.gz", "application/rss+xml")
    assert outcome is PollOutcome.NEW_ITEMS and len(raw) == 30
    outcome, encoded = poll_file("meduza__meduza.xml", "application/rss+xml", gzip=True)
    assert outcome is PollOutcome.NEW_ITEMS and encoded[0].language == "ru"


def test_lenta_items_follow_the_item_contract(poll_file) -> None:
    outcome, items = poll_file("lenta_ru__lenta.xml", "application/rss+xml; charset=utf-8")
    assert outcome is PollOutcome.NEW_ITEMS and len(items) >= 190
    first = items[0]
    assert first.url == "https://lenta.ru/news/2022/12/03/freedman/"
    assert first.published_at is not None and first.published_at.utcoffset().total_seconds() == 0
    assert first.language == "ru" and "<" not in first.summary
    assert len({item.item_id for item in items}) == len(items)
    assert any("Лукашенк" in item.title for item in items)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("feedparser-tests__illformed_rss_empty_document.xml", id="empty-document"),
        pytest.param("marketwatch__unrecognized.rss", id="not-rss"),
    ],
)
def test_documents_that_are_not_feeds_are_parse_errors(poll_file, name: str) -> None:
    outcome, items = poll_file(name)
    assert outcome is PollOutcome.PARSE_ERROR and items == []


def test_every_real_document_polls_without_crashing(poll_file, real_feeds: Path) -> None:
    outcomes = {}
    for path in sorted(real_feeds.iterdir()):
        if path.suffix != ".tsv":
            outcomes[path.name] = poll_file(path.name)[0]
    assert set(outcomes.values()) <= {PollOutcome.NEW_ITEMS, PollOutcome.NO_NEW_ITEMS,
                                      PollOutcome.PARSE_ERROR}
    assert sum(o is PollOutcome.NEW_ITEMS for o in outcomes.values()) >= 40
