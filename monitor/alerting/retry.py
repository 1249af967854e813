"""The delivery retry policy now lives in :mod:`monitor.retry`, shared with the feeds and the
stage runner; this name stays for the alert stage and the CLI until their imports move."""

from monitor.retry import RetryPolicy, is_retryable

__all__ = ["RetryPolicy", "is_retryable"]
