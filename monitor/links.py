"""Links into the claim desk from outside it (alerts, feeds), built in one place.

``public_url`` is where editors reach the desk (``MONITOR_HTTP__PUBLIC_URL``); a claim id is
quoted whole (``safe=""``), so no id can add a path segment, a query or a fragment.
"""

from __future__ import annotations

from urllib.parse import quote


def claim_page_url(public_url: str, claim_id: str) -> str:
    """``<public_url>/claims/<quoted id>``: the desk page of one claim."""
    return f"{public_url.rstrip('/')}/claims/{quote(claim_id, safe='')}"
