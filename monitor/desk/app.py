"""The desk's web application: the pages, the JSON API and the Atom feeds, read-only.

Routes: ``/`` (the list of claims, filtered by the query), ``/claims/<id>`` (a claim's
record), ``/claims/<id>.atom``, ``/api/claims``, ``/api/claims/<id>``,
``/api/claims/<id>/items?since=``, ``/api/schema.json``. Everything but the stylesheet needs
the credentials :mod:`monitor.desk.auth` asks for. Every answer forbids scripts, framing and
sniffing; feed text reaches the templates only through autoescape, links only through
:func:`~monitor.desk.shown.safe_link`. A view that cannot be read for now (a busy file, a
broker away) answers 503; anything else that goes wrong is a bug, logged by Flask as a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib.resources import files
from typing import Any

from flask import Flask, Response, abort, render_template, request
from werkzeug.exceptions import HTTPException

from monitor.config.claims import ClaimConfig
from monitor.desk.atom import atom_feed
from monitor.desk.auth import Access
from monitor.desk.listing import Filters, Row, choices, rows
from monitor.desk.payload import claim_json, items_json, record_json, seen_times
from monitor.desk.record import RELATIONS, ClaimRecord, Entry, build_record
from monitor.desk.shown import on_screen, safe_link, utc, xml_text
from monitor.desk.view import DeskView, activity_of
from monitor.errors import RecoverableError

HEADERS = {
    # No script at all; the one stylesheet comes from the desk itself.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
REFRESH_SECONDS = (10, 3600)
SCHEMA = files("monitor.desk").joinpath("schema", "desk-api.schema.json")


# The current claims: a sequence, or by id as ClaimRegistry.current gives them.
Claims = Callable[[], Mapping[str, ClaimConfig] | Sequence[ClaimConfig]]


class BadSince(ValueError):
    """``since`` is not an ISO 8601 time."""


def create_app(view: DeskView, claims: Claims, access: Access,
               public_url: str | None) -> Flask:
    app = Flask(__name__)
    app.jinja_env.autoescape = True  # every template, whatever its name ends with
    app.jinja_env.finalize = xml_text
    app.jinja_env.filters.update(link=safe_link, when=on_screen)
    app.jinja_env.globals.update(relations=RELATIONS)
    desk = _Desk(view, claims, public_url)

    @app.before_request
    def gate() -> Response | None:
        if request.endpoint == "static" or access.allows(request.authorization,
                                                          request.args.get("token")):
            return None
        denied = Response("401: this desk needs credentials\n", 401, mimetype="text/plain")
        for challenge in access.challenges():
            denied.headers.add("WWW-Authenticate", challenge)
        return denied

    @app.context_processor
    def screen() -> dict[str, int | None]:
        return {"refresh": _refresh(request.args.get("refresh"))}

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    app.register_error_handler(HTTPException, _error_page)
    app.register_error_handler(BadSince, _bad_since)
    app.register_error_handler(RecoverableError, _unavailable)
    for rule, name in (("/", "claims_page"), ("/claims/<claim_id>", "claim_page"),
                       ("/claims/<claim_id>.atom", "claim_atom"), ("/api/claims", "claims_api"),
                       ("/api/claims/<claim_id>", "claim_api"),
                       ("/api/claims/<claim_id>/items", "items_api"),
                       ("/api/schema.json", "schema")):
        app.add_url_rule(rule, name, getattr(desk, name))
    return app


class _Desk:
    """The views behind the routes; each reads the claims and the view afresh."""

    def __init__(self, view: DeskView, claims: Claims, public_url: str | None) -> None:
        self._view, self._current, self._public_url = view, claims, public_url

    def _claims(self) -> list[ClaimConfig]:
        current = self._current()
        return list(current.values() if isinstance(current, Mapping) else current)

    def claims_page(self) -> str:
        filters, configured = Filters.from_query(request.args), self._claims()
        activity = self._view.activity()
        return render_template("list.html", rows=rows(configured, activity, filters),
                               filters=filters, choices=choices(configured, activity),
                               total=len(configured))

    def claim_page(self, claim_id: str) -> str:
        row, record, _ = self._record(claim_id)
        return render_template("claim.html", row=row, record=record,
                               count=_count(record.news), background=_count(record.background))

    def claim_atom(self, claim_id: str) -> Response:
        _, record, seen = self._record(claim_id)
        body = atom_feed(record, seen, self._base_url())
        return Response(body, mimetype="application/atom+xml")

    def claims_api(self) -> Response:
        configured, activity = self._claims(), self._view.activity()
        listed = rows(configured, activity, Filters.from_query(request.args))
        return _json({"claims": [claim_json(row, self._base_url()) for row in listed]})

    def claim_api(self, claim_id: str) -> Response:
        row, record, seen = self._record(claim_id)
        return _json(record_json(row, record, seen, self._base_url()))

    def items_api(self, claim_id: str) -> Response:
        since = _since(request.args.get("since"))
        _, record, seen = self._record(claim_id)
        return _json(items_json(record, seen, since))

    def schema(self) -> Response:
        return Response(SCHEMA.read_bytes(), mimetype="application/schema+json")

    def _record(self, claim_id: str) -> tuple[Row, ClaimRecord, dict[str, datetime]]:
        claim = next((c for c in self._claims() if c.id == claim_id), None)
        if claim is None:
            abort(404, f"no claim {claim_id!r} is tracked here")
        matches = self._view.matches_of(claim.id)
        row = Row(claim, activity_of(claim.id, matches) if matches else None)
        return row, build_record(claim, matches), seen_times(matches)

    def _base_url(self) -> str:
        return self._public_url or request.host_url


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        raise BadSince(f"since: {value[:60]!r} is not an ISO 8601 time; write it like "
                       "2026-11-25T12:00:00Z (a time without a zone is read as UTC)") from None


def _refresh(value: str | None) -> int | None:
    """``?refresh=N``: a wall screen reloads the page every N seconds (10 to 3600), no script."""
    seconds = int(value) if value and value.isascii() and value.isdigit() else 0
    return seconds if REFRESH_SECONDS[0] <= seconds <= REFRESH_SECONDS[1] else None


def _count(carriers: Sequence[Entry]) -> int:
    return sum(len(carrier.with_reprints()) for carrier in carriers)


def _json(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document, ensure_ascii=False), status,
                    mimetype="application/json")


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _error_page(error: HTTPException) -> Response:
    status, message = error.code or 500, error.description or error.name
    if _wants_json():
        return _json({"error": message}, status)
    page = render_template("error.html", status=status, title=error.name, message=message)
    return Response(page, status, mimetype="text/html")


def _bad_since(error: BadSince) -> Response:
    return _json({"error": str(error)}, 400)


def _unavailable(error: RecoverableError) -> Response:
    message = f"desk: the view cannot be read for now ({error}); try again shortly"
    answer = _json({"error": message}, 503) if _wants_json() else Response(
        render_template("error.html", status=503, title="Unavailable", message=message), 503,
        mimetype="text/html")
    answer.headers["Retry-After"] = "5"
    return answer
