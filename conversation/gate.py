"""The response gate: at most one active response, with requests queued and coalesced.

The service rejects a `response.create` while another response is active
(`conversation_already_has_active_response`); a function call arrives before its response is
done, and server VAD starts responses of its own. So every response we want goes through here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from realtime.dialect import Event, response_create

log = logging.getLogger(__name__)
_ids = itertools.count(1)

# After the user stops speaking the service commits the turn and starts its own response;
# give it this long before we send ours, so the two do not collide.
VAD_GRACE_SECONDS = 0.5


@dataclass
class PendingRequest:
    causes: set[str] = field(default_factory=set)
    tools_allowed: bool = False


class ResponseGate:
    """Decides when a `response.create` may go out; knows which turns each response serves."""

    def __init__(self, send: Callable[[Event], Awaitable[None]]) -> None:
        self._send = send
        self._pending: PendingRequest | None = None
        self._in_flight: tuple[str, PendingRequest] | None = None  # sent, not yet created
        self._active: str | None = None  # response id, or "?" when only an error told us
        self._speaking = False
        self._hold_until = 0.0
        self._connected = False
        self._wake = asyncio.Event()
        self.causes_of: dict[str, set[str]] = {}

    @property
    def idle(self) -> bool:
        return self._active is None and self._in_flight is None and self._pending is None

    def request(self, causes: Iterable[str] = (), *, tools_allowed: bool = True) -> None:
        """Ask for a response on behalf of `causes` (turn ids); merged with any request still waiting."""
        pending = self._pending or PendingRequest()
        pending.causes.update(causes)
        pending.tools_allowed = pending.tools_allowed or tools_allowed
        self._pending = pending
        self._schedule()

    def connected(self) -> None:
        """A fresh service session: nothing is active there; waiting requests may go."""
        self._connected = True
        if self._in_flight:  # the old connection never answered it: ask again
            self._merge_back(self._in_flight[1])
        self._in_flight, self._active, self._speaking = None, None, False
        self._schedule()

    def disconnected(self) -> None:
        self._connected = False

    def on_speech_started(self) -> None:
        self._speaking = True

    def on_speech_stopped(self) -> None:
        self._speaking = False
        self._hold_until = asyncio.get_running_loop().time() + VAD_GRACE_SECONDS
        self._schedule()

    def on_response_created(self, response_id: str, metadata: dict | None) -> set[str]:
        """Record the active response; returns the turns it answers (empty for VAD's own)."""
        request_id = (metadata or {}).get("request_id")
        causes: set[str] = set()
        if self._in_flight and request_id == self._in_flight[0]:
            causes = self._in_flight[1].causes
            self._in_flight = None
        self._active = response_id
        self._hold_until = 0.0
        self.causes_of[response_id] = causes
        return causes

    def on_response_done(self, response_id: str) -> None:
        if self._active in (response_id, "?"):
            self._active = None
        self._schedule()

    def on_active_response_error(self) -> None:
        """Our request collided with a response we did not see start: retry after it ends."""
        if self._in_flight:
            self._merge_back(self._in_flight[1])
            self._in_flight = None
        if self._active is None:
            self._active = "?"

    def _merge_back(self, request: PendingRequest) -> None:
        pending = self._pending or PendingRequest()
        pending.causes |= request.causes
        pending.tools_allowed = pending.tools_allowed or request.tools_allowed
        self._pending = pending

    def _schedule(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send requests when the gate opens; the session runs this for its whole life."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = self._hold_until - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            if self._pending is None or not self._connected:
                continue
            if self._active is not None or self._in_flight is not None or self._speaking:
                continue
            request, self._pending = self._pending, None
            request_id = f"req_{next(_ids)}"
            self._in_flight = (request_id, request)
            try:
                await self._send(response_create(request_id, None if request.tools_allowed else "none"))
            except Exception as exc:  # the connection dropped: keep the request for the next one
                log.info("response.create not sent: %s", exc)
                self._in_flight = None
                self._merge_back(request)
