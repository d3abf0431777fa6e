"""The response gate: at most one active response, requests answered in order, nothing waits forever.

The service rejects a `response.create` while another response is active
(`conversation_already_has_active_response`); a function call arrives before its response is
done, and server VAD starts responses of its own. So every response we want goes through here.
The gate knows nothing of the wire: it yields each request when it may go (`decisions()`), and the
conversation sends it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
_ids = itertools.count(1)

# After the user stops speaking the service commits the turn and starts its own response;
# give it this long before we send ours, so the two do not collide.
VAD_GRACE_SECONDS = 0.5
# A committed voice turn whose response has not started after this long is not coming.
VAD_PENDING_SECONDS = 3.0
# A request the service has not answered with `response.created` by then is asked again.
CREATED_TIMEOUT_SECONDS = 5.0
# After this many unanswered attempts the request is given up (its turns are told so).
MAX_ATTEMPTS = 3


@dataclass
class Request:
    """One response we want, on behalf of `causes` (turn ids)."""

    causes: set[str] = field(default_factory=set)
    tools_allowed: bool = True
    separate: bool = False  # a typed message gets a response of its own; others may be merged
    request_id: str = ""
    attempts: int = 0
    prepared: bool = False  # what must precede it on the wire (the message itself) was sent
    instructions: str = ""  # for this response only (a spoken update while a tool runs)

    def merge(self, other: Request) -> None:
        self.causes |= other.causes
        self.tools_allowed = self.tools_allowed or other.tools_allowed


@dataclass(frozen=True)
class GiveUp:
    """The service never answered this request: its turns end unanswered."""

    request: Request


class ResponseGate:
    """Decides when a `response.create` may go out and which request a `response.created` answers."""

    def __init__(self, created_timeout: float = CREATED_TIMEOUT_SECONDS) -> None:
        self._created_timeout = created_timeout
        self._queue: deque[Request] = deque()
        self._in_flight: Request | None = None  # sent, not yet created
        self._sent_at = 0.0
        self._late: dict[str, Request] = {}  # re-queued after a timeout, in case the answer still comes
        self._active: str | None = None  # response id, or "?" when only an error told us
        self._speaking = False
        self._hold_until = 0.0
        self._vad_pending_until = 0.0
        self._connected = False
        self._wake = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()

    def request(self, causes: Iterable[str] = (), *, tools_allowed: bool = True, separate: bool = False,
                first: bool = False, instructions: str = "") -> None:
        """Ask for a response; a mergeable request joins the last waiting mergeable one; `first` goes before
        every waiting one (a response lost to a drop is asked again in its place)."""
        new = Request(set(causes), tools_allowed, separate, instructions=instructions)
        last = self._queue[-1] if self._queue else None
        if first:
            self._queue.appendleft(new)
        elif not separate and last is not None and not last.separate:
            last.merge(new)
        else:
            self._queue.append(new)
        self._changed()

    def waiting_causes(self) -> set[str]:
        """Turns with a request still queued or in flight: a response that just started does not answer those."""
        waiting = [*self._queue, *([self._in_flight] if self._in_flight else [])]
        return set().union(*(request.causes for request in waiting))

    def connected(self) -> None:
        """A fresh service session: nothing is active there; waiting requests may go."""
        self._connected = True
        if self._in_flight:  # the old connection never answered it: ask again, first
            self._queue.appendleft(self._in_flight)
        self._in_flight, self._active, self._speaking = None, None, False
        self._late.clear()
        self._changed()

    def disconnected(self) -> str | None:
        """The connection dropped; returns the response that was active (lost with it), if any. A request
        waiting for its `response.created` went down with the connection: it is asked again first after the
        reconnect, and the drop does not count as the service failing to answer it (nor does the time down)."""
        self._connected = False
        self._put_back()
        lost, self._active = self._active, None
        self._changed()
        return lost if lost != "?" else None

    def on_speech_started(self) -> None:
        self._speaking = True
        self._changed()

    def on_speech_stopped(self) -> None:
        self._speaking = False
        now = asyncio.get_running_loop().time()
        self._hold_until = now + VAD_GRACE_SECONDS
        self._vad_pending_until = now + VAD_PENDING_SECONDS  # the service will answer this turn itself
        self._changed()

    def on_response_created(self, response_id: str, request_id: str = "") -> set[str]:
        """Record the active response; returns the turns it answers (empty for VAD's own).

        The request id we tag requests with in their metadata decides when the service echoes it; older
        API versions and compatible servers do not, and then our request is answered by the next response
        unless a committed voice turn is waiting for the service's own.
        """
        now = asyncio.get_running_loop().time()
        ours: Request | None = None
        if request_id:
            if self._in_flight and request_id == self._in_flight.request_id:
                ours, self._in_flight = self._in_flight, None
            elif late := self._late.pop(request_id, None):
                ours = late
                if late in self._queue:
                    self._queue.remove(late)
                if late is self._in_flight:
                    self._in_flight = None
        elif self._in_flight and now >= self._vad_pending_until:
            ours, self._in_flight = self._in_flight, None
        if ours is None:
            self._vad_pending_until = 0.0  # that was the service's answer to the voice turn
        self._active = response_id
        self._hold_until = 0.0
        self._changed()
        return ours.causes if ours else set()

    def on_response_done(self, response_id: str) -> None:
        if self._active in (response_id, "?"):
            self._active = None
        self._changed()

    def on_active_response_error(self) -> None:
        """Our request collided with a response we did not see start: retry after it ends."""
        if self._in_flight:
            self._queue.appendleft(self._in_flight)
            self._in_flight = None
        if self._active is None:
            self._active = "?"
        self._changed()

    @property
    def quiet(self) -> bool:
        """Nothing active, in flight or queued, and the user is not speaking."""
        return self._quiet.is_set()

    async def wait_quiet(self) -> None:
        """Until nothing is active, in flight, queued, and the user is not speaking."""
        await self._quiet.wait()

    def _changed(self) -> None:
        idle = not (self._active or self._in_flight or self._queue or self._speaking)
        if idle:
            self._quiet.set()
        else:
            self._quiet.clear()
        self._wake.set()

    async def decisions(self) -> AsyncIterator[Request | GiveUp]:
        """For the conversation's whole life: each request when it may be sent now (the caller sends it before
        asking for the next decision, and hands it back with `unsent` if it could not), and each given up."""
        loop = asyncio.get_running_loop()
        while True:
            timeout = None
            if self._in_flight is not None:
                timeout = max(0.0, self._sent_at + self._created_timeout - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                if (unanswered := self._retry_unanswered()) is not None:
                    yield GiveUp(unanswered)
            self._wake.clear()
            delay = self._hold_until - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            if not self._queue or not self._connected:
                continue
            if self._active is not None or self._in_flight is not None or self._speaking:
                continue
            request = self._queue.popleft()
            request.request_id = f"req_{next(_ids)}"
            request.attempts += 1
            self._in_flight, self._sent_at = request, loop.time()
            yield request
            self._changed()

    def unsent(self, request: Request) -> None:
        """The request could not be sent (the connection dropped): it waits for the next connection, first.
        Nothing goes out until then: a send that fails at once would otherwise be retried without end."""
        self._connected = False
        if self._in_flight is request:
            self._put_back()
        self._changed()

    def _put_back(self) -> None:
        """The request in flight never reached the service: first in the queue again, its attempt not counted."""
        if self._in_flight is not None:
            self._in_flight.attempts -= 1
            self._queue.appendleft(self._in_flight)
            self._in_flight = None

    def _retry_unanswered(self) -> Request | None:
        """The request in flight got no `response.created` in time: ask again, or return it to give up."""
        request, self._in_flight = self._in_flight, None
        if request is None:
            return None
        given_up = request.attempts >= MAX_ATTEMPTS
        if given_up:
            log.warning("no response.created after %d attempts; giving up", request.attempts)
        else:
            log.info("no response.created within %.1f s; asking again", self._created_timeout)
            self._late[request.request_id] = request
            self._queue.appendleft(request)
        self._changed()
        return request if given_up else None
