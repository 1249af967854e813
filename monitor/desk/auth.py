"""Who may read the desk: a bearer token, a basic-auth user, or anyone on this machine.

The desk shows what the newsroom is tracking, so it listens on loopback unless told
otherwise, and :func:`access_from` refuses an address other hosts can reach when neither
``MONITOR_DESK__TOKEN`` nor ``MONITOR_DESK__USERNAME`` with ``MONITOR_DESK__PASSWORD`` is
set. An empty value counts as unset: it never lets anyone in. Secrets are compared in
constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from werkzeug.datastructures import Authorization

from monitor.config.settings import DeskSettings
from monitor.errors import ConfigError

REALM = "claim desk"


@dataclass(frozen=True, slots=True)
class Access:
    """The credentials a request must carry; with none set, every request is let in."""

    token: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None

    @property
    def required(self) -> bool:
        return self.token is not None or self.username is not None

    def allows(self, authorization: Authorization | None, query_token: str | None) -> bool:
        """Whether a request with this Authorization header and ``?token=`` may read."""
        if not self.required:
            return True
        if self.token is not None:
            offered = authorization.token if authorization and authorization.type == "bearer" \
                else query_token
            if offered is not None and _same(offered, self.token):
                return True
        if self.username is not None and self.password is not None and authorization \
                and authorization.type == "basic":
            user_ok = _same(authorization.username or "", self.username)
            password_ok = _same(authorization.password or "", self.password)
            return user_ok and password_ok  # both compared, whichever is wrong
        return False

    def challenges(self) -> list[str]:
        """The WWW-Authenticate values of a 401: basic first, so a browser asks for it."""
        found = []
        if self.username is not None:
            found.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if self.token is not None:
            found.append(f'Bearer realm="{REALM}"')
        return found


def access_from(desk: DeskSettings) -> Access:
    """The access the settings ask for; ConfigError (naming the setting) when a user comes
    without a password or the other way round, or when the desk would listen beyond this
    machine with no credentials."""
    token = _secret(desk.token.get_secret_value() if desk.token else None)
    username = _secret(desk.username)
    password = _secret(desk.password.get_secret_value() if desk.password else None)
    if (username is None) != (password is None):
        raise ConfigError("desk: MONITOR_DESK__USERNAME and MONITOR_DESK__PASSWORD go together; "
                          "set both for basic auth, or neither")
    access = Access(token=token, username=username, password=password)
    if not access.required and not is_loopback(desk.host):
        raise ConfigError(
            f"desk: MONITOR_DESK__ADDRESS={desk.address} can be reached from other hosts, and "
            "no credentials are set: set MONITOR_DESK__TOKEN, or MONITOR_DESK__USERNAME and "
            "MONITOR_DESK__PASSWORD, or listen on 127.0.0.1")
    return access


def is_loopback(host: str) -> bool:
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def _secret(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value else None


def _same(offered: str, expected: bytes) -> bool:
    return hmac.compare_digest(offered.encode("utf-8"), expected)
