"""The project's exception tree.

    MonitorError
    ├── ConfigError            a config file or setting is wrong; stops start-up
    ├── RecoverableError       try again later (reschedule or retry)
    │   ├── FetchError         a feed could not be fetched (network, HTTP status, limits)
    │   ├── PublishError       the bus did not acknowledge items
    │   ├── BusError           a stage's log (broker, state file) failed for now
    │   └── StoreError         the state file is locked or full for now
    └── InvalidInputError      the input itself is bad; retrying will not help
        └── ParseError         a fetched body is not a feed

Third-party exceptions (httpx, kafka-python, feedparser) are translated at the one module that
talks to that library, with ``raise ... from exc``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """A configuration file or setting is invalid. The message names file, entry and field."""


class RecoverableError(MonitorError):
    """A transient failure: the operation may succeed when tried again later."""


class FetchError(RecoverableError):
    """A feed could not be fetched.

    ``retry_after_seconds`` carries the server's Retry-After, when it sent one.
    """

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PublishError(RecoverableError):
    """The bus (Kafka or the embedded store) did not acknowledge every item."""


class FeedHandedOver(PublishError):
    """The feed went to another poller before its poll committed: the new owner publishes."""


class BusError(RecoverableError):
    """A stage could not read, write or commit on its log for now (a broker away, a busy state
    file). Nothing of the failed step is visible; the stage's runner tries again later.

    ``cause`` is the library's exception, for the log level (an outage is said once)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class StoreError(RecoverableError):
    """The local state file could not be read or written for now (locked by another process
    past the timeout, disk full, I/O error); the transaction was rolled back."""


class InvalidInputError(MonitorError):
    """The input is malformed; retrying the same input will fail the same way."""


class ParseError(InvalidInputError):
    """A fetched body could not be read as a feed."""
