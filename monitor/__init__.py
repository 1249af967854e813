"""Claim-tracking wire monitor: wire feeds in, claim matches out, alerts to newsrooms."""

__version__ = "0.1.0"
