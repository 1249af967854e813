"""The claim desk as a part of a process: its follower on a thread, and the web pages.

Embedded ``monitor run`` (the daemon) runs it beside the stages; ``monitor desk`` runs it
alone, in either mode. The view lives in its own file (``Settings.desk_view_path``): in Kafka mode
every copy of the desk keeps a whole view of its own, rebuilt from ``monitor.matches`` when
it starts empty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from monitor.config.claims import ClaimConfig
from monitor.config.settings import Settings
from monitor.desk.follower import DeskFollower, Follow
from monitor.desk.store import StoredDeskView
from monitor.metrics import Metrics
from monitor.runner import StageFailed, stage_thread

log = logging.getLogger(__name__)

_JOIN_SECONDS = 60.0
Claims = Callable[[], Mapping[str, ClaimConfig]]  # the current claims (ClaimRegistry.current)
AddCheck = Callable[[str, Callable[[], bool]], None]


class Server(Protocol):
    """The desk's web server, listening once started."""

    @property
    def port(self) -> int: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def serve_desk(view: StoredDeskView, claims: Claims, settings: Settings) -> Server:
    """The desk's pages over ``view``, listening on ``desk.address``."""
    from monitor.desk.web import DeskServer

    server = DeskServer(view, claims, settings)
    server.start()
    return server


class DeskPart:
    """See the module doc. ``follow`` is the transport's ``match_follower``."""

    def __init__(self, settings: Settings, follow: Follow, claims: Claims, metrics: Metrics,
                 add_check: AddCheck) -> None:
        self._settings, self._follow, self._claims = settings, follow, claims
        self._metrics, self._add_check = metrics, add_check
        self.view: StoredDeskView | None = None
        self.follower: DeskFollower | None = None
        self.server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, stopping: threading.Event, failed: StageFailed) -> None:
        self._claims()  # a claims file that cannot be read stops start-up, not a page
        self.view = StoredDeskView(self._settings.desk_view_path)
        self.follower = DeskFollower(self.view, self._follow, self._metrics)
        self._add_check("desk", self.follower.caught_up)
        self._thread = stage_thread(self.follower, stopping, failed)
        self._thread.start()
        self.server = serve_desk(self.view, self._claims, self._settings)  # logs its URL

    def close(self) -> None:
        """Stop serving, let the follower end its step (``stopping`` is set), close the view."""
        if self.server is not None:
            self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_SECONDS)
        if self.view is not None:
            self.view.close()
