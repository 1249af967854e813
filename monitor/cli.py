"""The ``monitor`` command line.

    monitor check [--feeds PATH]          validate the config files, exit 0 or explain
    monitor fetch FEED_ID [--feeds PATH]  fetch one feed once, print its items as JSON lines
    monitor poll  [--feeds PATH]          the poll stage alone (Kafka mode in production)
    monitor match                         the match stage alone (Kafka mode)
    monitor alert --alerts PATH           the alert stage alone (Kafka mode)
    monitor run   [--feeds PATH]          every stage in one process (embedded without Kafka)
    monitor desk  [--claims PATH]         the claim desk alone (its pages, API and feeds)
    monitor alerts history [--claim ID]   what was sent where and when
    monitor dlq list | replay ID          dead letters, and re-sending an alert given up on
    monitor claims timeline ID            everything linked to a claim, in time order
    monitor claims backtest ID --since 30d  what a claim would have linked among stored items
    monitor test-alert RECEIVER           a clearly marked test message through the real path
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from monitor.config.claims import ClaimConfig, load_claims
from monitor.config.feeds import FeedConfig, load_feeds
from monitor.config.settings import Settings, load_settings
from monitor.errors import ConfigError, InvalidInputError, MonitorError
from monitor.feeds.fetch import Validators
from monitor.feeds.parse import FeedSource, TextLimits, parse_feed
from monitor.logsetup import configure_logging
from monitor.model import encode_item

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("monitor.cli")

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def feeds_option(command: F) -> F:
    return click.option(
        "--feeds", "feeds_path", type=click.Path(path_type=Path), default=Path("feeds.yaml"),
        show_default=True, help="The feeds file.",
    )(command)


def _fail(message: str, code: int) -> None:
    click.echo(f"monitor: error: {message}", err=True)
    sys.exit(code)


def _load(feeds_path: Path) -> tuple[Settings, tuple[FeedConfig, ...]]:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings, load_feeds(feeds_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claim-monitor")
def cli() -> None:
    """Claim-tracking wire monitor."""


def claims_option(command: F) -> F:
    return click.option(
        "--claims", "claims_path", type=click.Path(path_type=Path), default=Path("claims.yaml"),
        show_default=True, help="The tracked claims file.",
    )(command)


def backtest_options(command: F) -> F:
    command = click.option("--apply", is_flag=True,
                           help="Record the backtest's links on the match log, as background "
                                "(never alerted); applying twice adds nothing.")(command)
    return click.option("--backtest", "--since", "since", metavar="30d|12h|ISO",
                        help="Items seen since then (default for backtest: 30d).")(command)


def alerts_option(command: F) -> F:
    return click.option(
        "--alerts", "alerts_path", type=click.Path(path_type=Path),
        default=Path("alerts/routes.yaml"), show_default=True,
        help="The alert routing file; every receiver's secrets must be in the environment.",
    )(command)


@cli.command()
@feeds_option
@claims_option
@alerts_option
def check(feeds_path: Path, claims_path: Path, alerts_path: Path) -> None:
    """Validate settings and config files; exit non-zero naming what is wrong."""
    load_settings()
    feeds = load_feeds(feeds_path)
    enabled = sum(feed.enabled for feed in feeds)
    click.echo(f"{feeds_path}: {len(feeds)} feeds ({enabled} enabled): ok")
    claims = load_claims(claims_path)
    tracking = sum(claim.status == "tracking" for claim in claims)
    click.echo(f"{claims_path}: {len(claims)} claims ({tracking} tracking): ok")
    _check_alerts(alerts_path)


def _check_alerts(alerts_path: Path) -> None:
    """Validate the routing file; secrets missing from this environment are warnings here
    (the alerter refuses to start without them), a URL Apprise cannot use is an error. Then
    render every template it can use once: a broken or missing one is an error naming the file."""
    from monitor.alerting.channels import unusable_url
    from monitor.alerting.template_check import check_templates
    from monitor.config.alerts import load_alerts, resolve_urls

    alerts = load_alerts(alerts_path)
    problems = []
    for receiver in alerts.receivers:
        try:
            urls = resolve_urls(receiver, os.environ)
        except ConfigError as exc:
            click.echo(f"monitor: warning: {exc}", err=True)
            continue
        problems += [f"{alerts_path}: receiver {receiver.name!r}: url {index}: {why}"
                     for index, url in enumerate(urls, 1) if (why := unusable_url(url))]
    if problems:
        raise ConfigError("\n".join(problems))
    click.echo(f"{alerts_path}: {len(alerts.receivers)} receivers: ok")
    template_dir = alerts_path.parent / "templates"  # the alert stage's override folder
    report = check_templates(alerts, template_dir)
    for warning in report.warnings:
        click.echo(f"monitor: warning: {warning}", err=True)
    click.echo(f"{template_dir}: {report.rendered} templates rendered "
               f"({len(report.overrides)} overrides): ok")


@cli.group()
def claims() -> None:
    """Inspect the tracked claims."""


@claims.command("list")
@claims_option
def claims_list(claims_path: Path) -> None:
    """One line per claim: id, status, tags, text."""
    for claim in load_claims(claims_path):
        tags = ",".join(claim.tags) or "-"
        click.echo(f"{claim.id}\t{claim.status}\t{tags}\t{claim.text}")


def _claim(claims_path: Path, claim_id: str) -> ClaimConfig:
    claim = next((c for c in load_claims(claims_path) if c.id == claim_id), None)
    if claim is None:
        raise ConfigError(f"{claims_path}: no claim with id {claim_id!r}")
    return claim


@claims.command("show")
@claims_option
@click.argument("claim_id")
def claims_show(claims_path: Path, claim_id: str) -> None:
    """Everything claims.yaml says about CLAIM_ID, as JSON."""
    claim = _claim(claims_path, claim_id)
    click.echo(claim.model_dump_json(indent=2))


@claims.command("add")
@claims_option
@click.option("--id", "claim_id", required=True, help="Lower-case letters, digits, '-'; unique.")
@click.option("--text", required=True, help="The claim, in English.")
@click.option("--speaker", help="Who made the claim.")
@click.option("--subject", help="Who or what the claim is about: their denial is a denial.")
@click.option("--lang-text", "lang_texts", multiple=True, metavar="LANG=TEXT",
              help="The claim in another language, e.g. ru=...; repeatable.")
@click.option("--keywords", "keyword_groups", multiple=True, metavar="A|B|C",
              help="One keyword group, alternatives separated by '|'; repeatable.")
@click.option("--exclude", multiple=True, help="Never link an item with this term; repeatable.")
@click.option("--threshold", help="0-100, the score a link needs.")
@click.option("--tag", "tags", multiple=True, help="Repeatable.")
@click.option("--expires", metavar="YYYY-MM-DD", help="Stop matching after this day.")
@click.option("--source-url", help="Where the claim was made.")
@click.option("--made-at", metavar="YYYY-MM-DD", help="When the claim was made.")
@backtest_options
def claims_add(claims_path: Path, claim_id: str, text: str, speaker: str | None,
               subject: str | None, lang_texts: tuple[str, ...], keyword_groups: tuple[str, ...],
               exclude: tuple[str, ...], threshold: str | None, tags: tuple[str, ...],
               expires: str | None, source_url: str | None, made_at: str | None,
               since: str | None, apply: bool) -> None:
    """Add a claim to the claims file (validated, written atomically, comments kept);
    with --backtest, then show what it would have linked among the items stored."""
    from monitor.config.claims_edit import add_claim

    texts: dict[str, str] = {}
    for value in lang_texts:
        language, sep, translated = value.partition("=")
        if not sep or language.strip() in texts:
            raise ConfigError(f"{claims_path}: field 'texts': --lang-text {value!r} is not "
                              "LANG=TEXT or repeats a language; not changed")
        texts[language.strip()] = translated.strip()
    entry: dict[str, Any] = {
        "id": claim_id, "text": text, "speaker": speaker, "subject": subject,
        "made_at": made_at,
        "source_url": source_url, "texts": texts or None,
        "keywords": [[term.strip() for term in group.split("|")] for group in keyword_groups]
        or None,
        "exclude": list(exclude) or None, "threshold": threshold, "tags": list(tags) or None,
        "expires": expires,
    }
    claim = add_claim(claims_path, entry)
    click.echo(f"{claims_path}: added claim {claim.id!r} ({len(claim.keywords)} keyword groups, "
               f"{len(claim.texts)} translations, threshold {claim.threshold:g}, "
               f"made_at {claim.made_at}: older items are background, not alerted)")
    if since is not None:
        _backtest(claims_path, claim.id, since, apply)


@claims.command("backtest")
@claims_option
@click.argument("claim_id")
@backtest_options
def claims_backtest(claims_path: Path, claim_id: str, since: str | None, apply: bool) -> None:
    """What CLAIM_ID would have linked among the items stored (the state file, or the items
    topic within its retention): time, outlet, relation ('?' when unsure), score, title.
    Compared through each item's stored features (word keys, sentence vector)."""
    _backtest(claims_path, claim_id, since or "30d", apply)


def _backtest(claims_path: Path, claim_id: str, since_text: str, apply: bool) -> None:
    from monitor.desk.backtest_lines import backtest_lines
    from monitor.match.backtest_run import claim_index, parse_since, run_backtest, stored_items

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    since = parse_since(since_text, datetime.now(UTC))
    if settings.embedded and not settings.state_path.exists():
        # Opening it would make an empty one, and "0 link(s)" would hide the wrong path.
        _fail(f"backtest: no state file at {settings.state_path} (MONITOR_STATE_PATH): "
              "nothing is stored there to backtest over", 2)
    index = claim_index(settings, claims_path)
    with stored_items(settings, index) as stored:
        bar: list[Any] = []
        compared: list[int] = []

        def progress(total: int) -> Callable[[int], None]:
            compared.append(total)
            bar.append(click.progressbar(length=total, label=f"backtest {claim_id}",
                                         file=sys.stderr))
            bar[0].__enter__()
            return bar[0].update  # type: ignore[no-any-return]

        try:
            found = run_backtest(stored, index, claim_id, since, progress)
        finally:
            for shown in bar:
                shown.__exit__(None, None, None)
        click.echo(f"backtest {claim_id}: {sum(compared)} stored item(s) seen since "
                   f"{since.astimezone(UTC):%Y-%m-%d %H:%M}Z compared", err=True)
        click.echo("\n".join(backtest_lines(found)))
        if apply:
            added = stored.apply(found)
            click.echo(f"applied: {added} new background link(s) on the match log "
                       f"({len(found) - added} already there); none is alerted")


@claims.command("retire")
@claims_option
@click.argument("claim_id")
def claims_retire(claims_path: Path, claim_id: str) -> None:
    """Set status: retired on CLAIM_ID (written atomically, comments kept)."""
    from monitor.config.claims_edit import retire_claim

    retire_claim(claims_path, claim_id)
    click.echo(f"{claims_path}: retired claim {claim_id!r}")


@claims.command("timeline")
@claims_option
@click.argument("claim_id")
def claims_timeline(claims_path: Path, claim_id: str) -> None:
    """Everything linked to CLAIM_ID, in time order (UTC; '~' marks when the monitor saw an
    undated item): relation ('?' when unsure), confidence, outlet, language, title, link;
    reprints under their first carrier; items older than the claim apart, as background.
    Read from the match log (the state file, or monitor.matches in Kafka mode)."""
    from monitor.desk.record import build_record
    from monitor.desk.source import read_claim_matches
    from monitor.desk.terminal import render

    claim = _claim(claims_path, claim_id)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    record = build_record(claim, read_claim_matches(settings, claim_id))
    click.echo("\n".join(render(record)))


@cli.command()
@feeds_option
@click.argument("feed_id")
def fetch(feeds_path: Path, feed_id: str) -> None:
    """Fetch FEED_ID once (unconditionally) and print its items as JSON lines."""
    from monitor.service import build_fetcher

    settings, feeds = _load(feeds_path)
    feed = next((f for f in feeds if f.id == feed_id), None)
    if feed is None:
        raise ConfigError(f"{feeds_path}: no feed with id {feed_id!r}")
    fetcher = build_fetcher(settings)
    try:
        now = datetime.now(UTC)
        result = fetcher.fetch(feed.url, Validators(), now)
    finally:
        fetcher.close()
    parsed = parse_feed(result.body, result.content_type,
                        FeedSource(feed.id, feed.source, feed.language), now,
                        TextLimits(settings.poll.max_title_chars, settings.poll.max_summary_chars,
                                   settings.poll.max_body_bytes))
    for item in parsed.items:
        click.echo(encode_item(item).decode("utf-8"))
    click.echo(f"fetch {feed.id}: {len(parsed.items)} items, encoding {parsed.encoding}"
               + (f", warning: {parsed.warning}" if parsed.warning else ""), err=True)


def _run_stages(feeds_path: Path | None, once: bool, claims_path: Path | None = None,
                alerts_path: Path | None = None, *, poll: bool = True, match: bool = True,
                desk: Literal["off", "embedded", "alone"] = "off") -> None:
    """Build the process's service, run it until it is asked to stop (or with ``once``, one
    round), close it, and exit non-zero when a stage stopped on an error. Settings are read
    here, once; ``monitor match`` and ``monitor alert`` need Kafka. ``desk`` "embedded": the
    daemon serves the desk in embedded mode when ``desk.enabled``; "alone": ``monitor desk``."""
    from monitor.once import OnceReport, run_once
    from monitor.service import Service, install_signal_handlers

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if not poll and settings.embedded and desk != "alone":
        command, instead = (("match", "`monitor run` matches") if match else
                            ("alert", "`monitor run --alerts PATH` alerts"))
        raise ConfigError(f"monitor {command} needs MONITOR_KAFKA__BOOTSTRAP_SERVERS; in "
                          f"embedded mode {instead} in-process")
    feeds = load_feeds(feeds_path) if feeds_path is not None else ()
    service = Service(settings, feeds, claims_path=claims_path, alerts_path=alerts_path,
                      feeds_path=feeds_path, serve_http=not once, poll=poll, match=match,
                      desk=desk == "alone" or (desk == "embedded" and not once
                                               and settings.embedded and settings.desk.enabled))
    install_signal_handlers(service.stopping, service.watcher.requested)
    report: OnceReport | None = None
    try:
        if once:
            report = run_once(service)
        else:
            service.start()
            service.run_until_stopped()
    finally:
        service.close()
    if service.failed.error is not None:
        _fail(f"{service.failed.stage}: stopped by {service.failed.error!r}", EXIT_FAILURE)
    if report is not None:
        click.echo(report.line(), err=True)
        if report.exit_code:
            sys.exit(report.exit_code)


ONCE_EXIT_STATUS = """With --once it prints a one-line summary and exits 0 when all was done, 1 when
work was left at a deadline (a feed not polled, items not matched, alerts pending: they stay
queued for the next run), no feed was polled successfully, or an alert was dead-lettered;
2 on a configuration error. It serves no metrics endpoint."""


@cli.command(epilog=ONCE_EXIT_STATUS)
@feeds_option
@click.option("--once", is_flag=True, help="Poll every due feed once, then exit.")
def poll(feeds_path: Path, once: bool) -> None:
    """Run the poll stage: publish new items to Kafka (or the embedded item log)."""
    _run_stages(feeds_path, once)


@cli.command()
@claims_option
def match(claims_path: Path) -> None:
    """Run the match stage alone: monitor.items -> monitor.matches (Kafka mode)."""
    _run_stages(None, False, claims_path, poll=False)


@cli.command()
@claims_option
@alerts_option
def alert(claims_path: Path, alerts_path: Path) -> None:
    """Run the alert stage alone: monitor.matches -> channels, recorded on monitor.alerts
    (Kafka mode; run several in one group to share the partitions)."""
    _run_stages(None, False, claims_path, alerts_path, poll=False, match=False)


@cli.command(epilog=ONCE_EXIT_STATUS)
@feeds_option
@claims_option
@click.option("--alerts", "alerts_path", type=click.Path(path_type=Path), default=None,
              help="The alert routing file (e.g. alerts/routes.yaml); without it, no alerts. "
                   "Every receiver's secrets must be in the environment.")
@click.option("--once", is_flag=True,
              help="Poll every due feed once, match what came, deliver the alerts, then "
                   "exit (status below).")
def run(feeds_path: Path, claims_path: Path, alerts_path: Path | None, once: bool) -> None:
    """Run every stage in one process (embedded mode when no Kafka is configured; then the
    daemon serves the claim desk too, unless MONITOR_DESK__ENABLED=false)."""
    _run_stages(feeds_path, once, claims_path, alerts_path, desk="embedded")


@cli.command()
@claims_option
def desk(claims_path: Path) -> None:
    """Serve the claim desk alone, in either mode: the claims, a page, API and Atom feed per
    claim, at MONITOR_DESK__ADDRESS. Its view of the match log (MONITOR_DESK__VIEW_PATH) is
    its own, rebuilt from the log when missing; in Kafka mode run as many copies as needed."""
    _run_stages(None, False, claims_path, poll=False, match=False, desk="alone")


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _describe_entry(entry: Any) -> str:
    moment = entry.sent_at or entry.dead_at or entry.created_at
    error = f"\t{entry.last_error}" if entry.last_error and entry.status != "sent" else ""
    return (f"{entry.id}\t{entry.status}\t{_when(moment)}\t{entry.receiver}\t"
            f"{','.join(entry.claim_ids)}\t{len(entry.match_ids)} match(es)\t"
            f"{entry.attempts} attempt(s){error}")


@cli.group()
def alerts() -> None:
    """What the alerter did (monitor.alerts in Kafka mode, the local state file otherwise)."""


@alerts.command("history")
@click.option("--claim", "claim_id", help="Only alerts about this claim.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def alerts_history(claim_id: str | None, limit: int) -> None:
    """Newest first: id, status, when, receiver, claims, matches, attempts."""
    from monitor.alerting.alert_log import history
    from monitor.alerting.archive import open_archive

    with open_archive(load_settings()) as archive:
        entries = history(archive.records(), claim_id, limit)
    for entry in entries:
        click.echo(_describe_entry(entry))


@cli.group()
def dlq() -> None:
    """Dead letters: alerts given up on after their last attempt, and records a stage could
    not read (monitor.dlq in Kafka mode, the local state file otherwise)."""


@dlq.command("list")
def dlq_list() -> None:
    """One line per dead letter: id, dead or replayed, when, stage, receiver, attempts, error."""
    from monitor.alerting.archive import letter_states, open_archive

    with open_archive(load_settings()) as archive:
        states = letter_states(archive)
    for letter, state in states:
        click.echo(f"{letter.id}\t{state}\t{letter.at}\t{letter.stage}\t{letter.receiver}\t"
                   f"{letter.attempts} attempt(s)\t{letter.error}")


@dlq.command("replay")
@claims_option
@alerts_option
@click.argument("notification_id")
def dlq_replay(claims_path: Path, alerts_path: Path, notification_id: str) -> None:
    """Re-send an alert given up on: now, once, through the current routes and templates;
    recorded as sent when it went, exit 1 if it failed (it stays a dead letter)."""
    from monitor.alerting.archive import open_archive
    from monitor.alerting.dead_letters import find_alert_letter

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    with open_archive(settings) as archive:
        letter = find_alert_letter(archive.dead_letters(), notification_id)
        _replay(archive, letter, claims_path, alerts_path, settings.http.public_url)


def _replay(archive: Any, letter: Any, claims_path: Path, alerts_path: Path,
            public_url: str | None) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.alerting.archive import replay_letter
    from monitor.alerting.channels import build_channels
    from monitor.alerting.core import AlertCore, Sent
    from monitor.alerting.stage import load_stage_config
    from monitor.match.registry import ClaimRegistry
    from monitor.metrics import Metrics
    from monitor.retry import RetryPolicy

    core = AlertCore(load_stage_config(alerts_path, os.environ, public_url),
                     ClaimRegistry(claims_path).current, build_channels(),
                     Metrics(CollectorRegistry()), retry=RetryPolicy(max_attempts=1))
    try:
        outcome = replay_letter(archive, core, letter, time.time())
    finally:
        core.close()
    if not isinstance(outcome, Sent):
        _fail(f"dlq: {letter.id} to {letter.receiver} failed again: "
              f"{getattr(outcome, 'error', outcome)}; it stays in the DLQ", EXIT_FAILURE)
        return
    click.echo(f"dlq: {letter.id} sent to {letter.receiver}")


@cli.command("test-alert")
@claims_option
@alerts_option
@click.argument("receiver")
def test_alert(claims_path: Path, alerts_path: Path, receiver: str) -> None:
    """Send a clearly marked test message to RECEIVER through its real channels; exit 1 when
    any of its URLs failed."""
    from monitor.alerting.messages import send_test_alert

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    results = send_test_alert(alerts_path, claims_path, receiver, os.environ,
                              public_url=settings.http.public_url)
    for described, result in results:
        click.echo(f"{receiver}\t{described}\t{result.status}\t{result.detail}")
    if not all(result.ok for _, result in results):
        sys.exit(EXIT_FAILURE)


@cli.group()
def silence() -> None:
    """Silence alerts for a claim, tag, source or relation, for a while, with a reason."""


@contextmanager
def _silences() -> Iterator[tuple[Any, datetime]]:
    """The deployment's silences (the state file's, or the silences topic in Kafka mode)."""
    from monitor.bus.transport import choose_transport
    from monitor.store import Database

    settings = load_settings()
    opened: list[Database] = []

    def database() -> Database:
        opened.append(Database(settings.state_path))
        return opened[-1]

    transport = choose_transport(settings, database)
    book = transport.silences()
    try:
        yield book, datetime.now(UTC)
    finally:
        book.close()
        transport.close()
        for made in opened:
            made.close()


def _describe_silence(s: Any, now: datetime) -> str:
    state = "active" if s.is_active(now) else "expired"
    matchers = ", ".join(str(m) for m in s.matchers)
    return (f"{s.id}\t{state}\tuntil {s.expires_at.isoformat(timespec='minutes')}\t"
            f"{matchers}\t{s.reason} ({s.created_by})")


@silence.command("add")
@click.option("--match", "matchers", multiple=True, required=True,
              help="e.g. 'claim = kupiansk-captured', 'tags =~ belarus', 'source = TASS'.")
@click.option("--for", "duration", default="4h", show_default=True, help="e.g. 30m, 4h, 2d.")
@click.option("--reason", required=True)
@click.option("--by", "created_by", default=lambda: os.environ.get("USER", "unknown"),
              help="Who silenced it (default: $USER).")
def silence_add(matchers: tuple[str, ...], duration: str, reason: str, created_by: str) -> None:
    """Add a silence; prints its id."""
    from datetime import timedelta

    from monitor.config.feeds import parse_duration_seconds

    try:
        seconds = float(parse_duration_seconds(duration))
    except ValueError as exc:
        raise InvalidInputError(f"silence: --for: {exc}") from exc
    with _silences() as (book, now):
        added = book.add(list(matchers), now + timedelta(seconds=seconds), reason, created_by,
                         now)
    click.echo(_describe_silence(added, now))


@silence.command("list")
@click.option("--all", "include_expired", is_flag=True, help="Include expired silences.")
def silence_list(include_expired: bool) -> None:
    """One line per silence: id, state, expiry, matchers, reason."""
    with _silences() as (book, now):
        listed = book.list(include_expired=include_expired, now=now)
    for item in listed:
        click.echo(_describe_silence(item, now))


@silence.command("expire")
@click.argument("silence_id")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    with _silences() as (book, now):
        ended = book.expire(silence_id, now)
    click.echo(_describe_silence(ended, now))


@cli.command()
@click.option("--url", "urls", multiple=True,
              help="A process's metrics URL; repeat it for every process of the pipeline "
                   "(default: MONITOR_STATUS__ENDPOINTS, else the local daemon from "
                   "MONITOR_HTTP__ADDRESS).")
def status(urls: tuple[str, ...]) -> None:
    """Print what the running daemon reports: each feed's last success, failures and next
    poll (failing and stale feeds first), claims tracked, consumer lag, alert outbox. Given
    several processes: each one's roles and whether it is up, then the whole pipeline (exit
    1 when one is down)."""
    from monitor.status import (
        fetch_status,
        read_endpoints,
        read_last_errors,
        render_pipeline,
        render_status,
    )

    errors: dict[str, str] = {}
    if not urls:
        settings = load_settings()
        urls = settings.status.endpoints
        if not urls:  # the local daemon: its state file has each feed's last error's text
            http = settings.http
            host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
            urls = (f"http://{host}:{http.port}/metrics",)
            errors = read_last_errors(settings.state_path)
    if len(urls) == 1:
        click.echo(render_status(fetch_status(urls[0]), errors=errors))
        return
    endpoints = read_endpoints(urls)
    click.echo(render_pipeline(endpoints))
    if not all(endpoint.up for endpoint in endpoints):
        sys.exit(EXIT_FAILURE)


@cli.command("eval")
@click.argument("dataset",
                type=click.Choice(["emergent", "fnc1", "paraphraser", "clef", "desk"]))
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("files", nargs=-1)
@click.option("--threshold", type=float, default=None,
              help="Link threshold (default: the claims' default; for paraphraser the "
                   "restatement threshold, RESTATEMENT_THRESHOLD in monitor/config/claims.py).")
@click.option("--split", default="dev", show_default=True, help="CLEF split folder.")
@click.option("--lexical-only", is_flag=True,
              help="Link on words alone, without sentence vectors (the baseline).")
@click.option("--cross-validate", is_flag=True,
              help="Held-out figures on a training file: emergent scores stance with "
                   "models trained on the other folds (grouped by claim), not the shipped "
                   "model that saw these pairs; paraphraser adds a threshold chosen on "
                   "the other folds. Not for fnc1: its body model's held-out figures come "
                   "from its training command (see the error).")
@click.option("--feeds", "feeds_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("../shared/feeds/real"), show_default=True,
              help="desk: the folder of real feed documents the cases refer to.")
def eval_command(dataset: str, path: Path, files: tuple[str, ...], threshold: float | None,
                 split: str, lexical_only: bool, cross_validate: bool, feeds_dir: Path) -> None:
    """Score linking and stance on a labelled data set; prints one JSON object.

    The first run embeds the data set's texts (minutes for CLEF's 10,375 claims); the vectors
    are cached in ~/.cache/monitor/embeddings.sqlite3, so later runs take seconds.
    """
    import json

    from monitor import evaluate
    from monitor.config.claims import DEFAULT_THRESHOLD, RESTATEMENT_THRESHOLD

    # ParaPhraser asks "same news or only the same topic?": the restatement threshold's job.
    default = RESTATEMENT_THRESHOLD if dataset == "paraphraser" else DEFAULT_THRESHOLD
    limit = default if threshold is None else threshold
    semantic = not lexical_only
    if dataset == "emergent":
        result = evaluate.emergent(path, limit, semantic, cross_validate)
    elif dataset == "fnc1":
        if cross_validate:  # refitting the body model's trees is training, not evaluation
            raise click.UsageError(
                "fnc1 --cross-validate: the body model is refitted per fold by its training "
                "command, which needs the train extra (pip install -e '.[train]'): python -m "
                "monitor.match.train_body_stance --data DIR --cv-only --link")
        result = evaluate.fnc1(path, files, limit, semantic)
    elif dataset == "paraphraser":
        result = evaluate.paraphraser(path, limit, semantic, cross_validate)
    elif dataset == "desk":
        from monitor import desk_eval

        result = desk_eval.score(path, feeds_dir, semantic)
    else:
        result = evaluate.clef(path, split, semantic)
    click.echo(json.dumps(result, ensure_ascii=False))


def main() -> None:
    started = time.monotonic()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", EXIT_FAILURE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (ConfigError, InvalidInputError) as exc:
        _fail(str(exc), EXIT_CONFIG)
    except MonitorError as exc:
        _fail(f"{exc} (after {time.monotonic() - started:.1f} s)", EXIT_FAILURE)
