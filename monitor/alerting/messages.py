"""The alerter's own messages: the notification payload codec and the ``monitor test-alert``
message.

A notification payload (on a "pending" alert record, in a dead letter) is the notification's
matches in their wire form plus the receiver, with a version; it is rendered per URL only at
delivery time.

A test alert goes through the real path (routes.yaml, secrets from the environment, the
receiver's template, the real channels) but not through the alert stage: it is sent once, now, and
its result printed. It is marked as a test in title and body (``AlertGroup(test=True)``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from monitor.alerting.channels import build_channels
from monitor.alerting.deliver import DeliveryResult, describe_url
from monitor.alerting.grouping import Notification
from monitor.alerting.render import AlertGroup, channel_for_url, render
from monitor.config.alerts import load_alerts, resolve_urls
from monitor.config.claims import ClaimConfig, load_claims
from monitor.errors import ConfigError, InvalidInputError
from monitor.model import Evidence, Item, Match, match_fields, match_from_fields

TEST_SOURCE = "claim-monitor test"
PAYLOAD_VERSION = 1


def encode_payload(notification: Notification) -> bytes:
    return json.dumps({"version": PAYLOAD_VERSION, "receiver": notification.receiver,
                       "first": notification.first,
                       "matches": [match_fields(m) for m in notification.matches]},
                      ensure_ascii=False).encode("utf-8")


def decode_payload(payload: bytes) -> tuple[Match, ...]:
    """The matches of a notification payload; InvalidInputError when it cannot be read."""
    try:
        raw = json.loads(payload)
        if raw.get("version") != PAYLOAD_VERSION:
            raise InvalidInputError(f"alert: unsupported payload version {raw.get('version')!r}")
        return tuple(match_from_fields(m) for m in raw["matches"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"alert: malformed notification payload: {exc}") from exc


def made_up_match(claim: ClaimConfig, now: datetime) -> Match:
    """A made-up denial of ``claim``, plainly labelled as a test."""
    stamp = now.isoformat(timespec="seconds")
    digest = hashlib.sha256(f"{claim.id}\n{stamp}".encode()).hexdigest()[:16]
    item = Item(item_id=f"test-{digest}", feed_id="test-alert", source=TEST_SOURCE,
                url="https://example.org/claim-monitor-test-alert", guid=None,
                title=f"TEST ALERT from claim-monitor ({stamp}): please ignore",
                summary="This is a test message sent by `monitor test-alert`. "
                        "No outlet published this story.",
                language="en", published_at=now, fetched_at=now, content_hash=digest)
    evidence = Evidence(("test",), "main", "test-alert", 1.0)
    return Match(match_id=f"test-{digest}", claim_id=claim.id, item=item, score=100.0,
                 relation="denial", evidence=evidence, matcher_version="test-alert")


def send_test_alert(alerts_path: Path, claims_path: Path, receiver_name: str,
                    environ: Mapping[str, str], *, now: datetime | None = None,
                    public_url: str | None = None) -> list[tuple[str, DeliveryResult]]:
    """Send a test alert to every URL of the receiver: (URL described without secrets,
    result) per URL. ConfigError for an unknown receiver, a missing secret, no tracked claim."""
    alerts = load_alerts(alerts_path)
    try:
        receiver = alerts.receiver(receiver_name)
    except KeyError:
        known = ", ".join(r.name for r in alerts.receivers)
        raise ConfigError(f"{alerts_path}: no receiver {receiver_name!r} (known: {known})"
                          ) from None
    urls = resolve_urls(receiver, environ)
    claim = next((c for c in load_claims(claims_path) if c.status == "tracking"), None)
    if claim is None:
        raise ConfigError(f"{claims_path}: no tracked claim to make a test alert about")
    group = AlertGroup(claim, (made_up_match(claim, now or datetime.now(UTC)),), test=True)
    channels = build_channels()
    try:
        return [(describe_url(url),
                 channels.send(render(group, channel_for_url(url),
                                      template_dir=alerts_path.parent / "templates",
                                      template=receiver.template, public_url=public_url),
                               url))
                for url in urls]
    finally:
        channels.close()
