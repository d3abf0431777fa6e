"""The conversation's link to the service over time: connect, reconnect after drops, and move to a
fresh service session before the service's duration cap, at a quiet moment.

The link yields what happens (`events()`): a new service session, the service's typed events, the
end of a session. A new connection is a blank service session, so the conversation configures it and
replays itself when the link yields `SessionStarted`, before the link reports it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from conversation.notices import Notice, NoticeKind, connect_failed
from realtime.connection import ConnectError, RealtimeConnection
from realtime.dialect import Event
from realtime.events import ServerEvent
from settings import RealtimeSettings

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1, 2, 4, 8)


class ConnectionState(StrEnum):
    NOT_CONNECTED = "not_connected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    NOT_CONFIGURED = "not_configured"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionStarted:
    """A new, blank service session (`fresh` only for the very first): configure it before the next event."""

    fresh: bool


@dataclass(frozen=True)
class SessionEnded:
    """The service session is gone (drop or rotation): whatever was in progress there is lost."""


LinkEvent = SessionStarted | SessionEnded | ServerEvent


class ServiceLink:
    def __init__(self, settings: RealtimeSettings, on_change: Callable[[], None],
                 quiet: Callable[[], Awaitable[None]], debug: bool = False) -> None:
        self._connection = RealtimeConnection(settings, debug)
        self._on_change, self._quiet = on_change, quiet
        self._rotate_after = settings.rotate_after
        self.state = ConnectionState.NOT_CONNECTED
        self.notice: Notice | None = None
        self.rotations = 0
        self._up = asyncio.Event()
        self._gave_up = asyncio.Event()  # connecting cannot succeed (missing settings, wrong key)
        self._rotating = False
        self._closed = False

    @property
    def up(self) -> bool:
        return self._up.is_set()

    @property
    def gave_up(self) -> bool:
        return self._gave_up.is_set()

    def give_up(self, state: ConnectionState, notice: Notice) -> None:
        self.state, self.notice = state, notice
        self._gave_up.set()
        self._on_change()

    async def wait_up(self, timeout: float) -> bool:
        """True once connected; False after `timeout` or as soon as connecting cannot succeed."""
        waits = [asyncio.ensure_future(self._up.wait()), asyncio.ensure_future(self._gave_up.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        return self._up.is_set()

    async def send(self, event: Event) -> None:
        await self._connection.send(event)

    async def drop(self) -> None:
        """End this service session as a drop would (its set-up could not be sent): reconnect."""
        await self._connection.close()

    async def events(self) -> AsyncIterator[LinkEvent]:
        """Connect, yield what happens, and reconnect after drops (with backoff) until closed or refused."""
        failures, fresh = 0, True
        while not self._closed:
            if not self._rotating:
                self.state = ConnectionState.CONNECTING if fresh else ConnectionState.RECONNECTING
                self._on_change()
            was_up = refused = False
            rotation = None
            try:
                await self._connection.open()
                yield SessionStarted(fresh)  # the conversation configures the blank session meanwhile
                if not self._connection.is_open:
                    raise ConnectionError("the new service session could not be configured")
                if self._rotating:
                    self.notice = None
                elif not fresh:
                    self.notice = Notice(NoticeKind.RECONNECTED)
                self._rotating, fresh = False, False
                self.state, was_up, failures = ConnectionState.CONNECTED, True, 0
                self._up.set()
                self._on_change()
                rotation = asyncio.create_task(self._rotate_when_due(), name="session rotation")
                async for event in self._connection.events():
                    yield event
            except ConnectError as exc:
                if exc.retry:
                    self.state, self.notice = ConnectionState.FAILED, connect_failed(exc)
                else:  # a wrong key or URL will not fix itself
                    self.give_up(ConnectionState.FAILED, connect_failed(exc))
                    refused = True
            except Exception:  # a socket dropped mid-send or similar: recover like any other drop
                log.warning("realtime connection failed", exc_info=True)
            finally:
                if rotation is not None:
                    rotation.cancel()
                self._up.clear()
                await self._connection.close()
            yield SessionEnded()
            if self._closed or refused:
                return
            if self._rotating:
                continue  # a planned move: reconnect at once, quietly
            if was_up:
                self.notice = Notice(NoticeKind.RECONNECTING)
            self._on_change()
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1

    async def _rotate_when_due(self) -> None:
        """Before the service's cap, at a quiet moment, end this service session for a fresh one."""
        if not self._rotate_after:
            return
        started = time.monotonic()
        await asyncio.sleep(self._rotate_after)
        await self._quiet()
        log.info("moving to a fresh service session after %.0f s", time.monotonic() - started)
        self._rotating = True
        self.rotations += 1
        await self._connection.close()

    @property
    def rotating(self) -> bool:
        return self._rotating

    async def close(self) -> None:
        self._closed = True
        self.state = ConnectionState.CLOSED
        with contextlib.suppress(Exception):
            await self._connection.close()
