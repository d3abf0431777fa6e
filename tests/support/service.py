"""The local Realtime server with the instruments only tests and benchmarks need.

`InstrumentedServer` is offline/server.py's `RealtimeServer` (the product's, unchanged) plus: a record of what
each connection exchanged, refusing handshakes with an HTTP status, dropping every connection after a while,
and cutting one connection at an exact point of the exchange, as a network drop looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from audio import decode_pcm16
from offline.engine import EngineConnection, Event
from offline.server import RealtimeServer
from offline.wire import Dialect


@dataclass
class ConnectionRecord:
    """What one client connection exchanged."""

    path: str
    dialect: Dialect
    headers: dict[str, str]
    received: list[Event] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.time() of each received event
    audio: list[np.ndarray] = field(default_factory=list)
    sent: list[Event] = field(default_factory=list)  # as they went out on the wire
    session: EngineConnection | None = None  # the service session of this connection
    connection: ServerConnection | None = None

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.received if e.get("type") == event_type]

    def sent_of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.sent if e.get("type") == event_type]

    @property
    def received_audio(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)


@dataclass
class CutPoint:
    """Where the server cuts a connection once, with no close frame, as a network drop looks.

    At the first event (after `skip` of them) whose type is one of `types`: received from the client
    (`sent=False`, cut before the engine sees it), or about to go out (`sent=True`: cut instead of sending it,
    or just after it went out when `after`). `reached` is set once it cut.
    """

    types: tuple[str, ...]
    sent: bool = False
    after: bool = False
    skip: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, event: Event, sent: bool) -> bool:
        if self.reached.is_set() or sent != self.sent or event.get("type") not in self.types:
            return False
        self.skip -= 1
        return self.skip < 0


class InstrumentedServer(RealtimeServer):
    """`RealtimeServer` with a record of every connection and switches for refusals, drops and cuts.

    Args (beyond RealtimeServer's):
        record: keep every connection's events and decoded audio in `connections` (it grows: off for long soaks).
        drop_every_seconds: cut each connection this long after it opens, with no close handshake.
    """

    def __init__(self, *args: Any, record: bool = True, drop_every_seconds: float | None = None,
                 **options: Any) -> None:
        super().__init__(*args, **options)
        self.record = record
        self.drop_every_seconds = drop_every_seconds
        self.reject_status: int | None = None  # answer every handshake with this HTTP status
        self.cut: CutPoint | None = None  # where to cut a connection next (`cut_at`)
        self.connections: list[ConnectionRecord] = []  # every connection so far, when recording
        self._records: dict[ServerConnection, ConnectionRecord] = {}  # live connections
        self._drops: dict[ServerConnection, asyncio.Future] = {}

    def refuse(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.reject_status:
            return None
        status = HTTPStatus(self.reject_status)
        return connection.respond(status, json.dumps({"error": {"code": str(status.value), "message": status.phrase}}))

    def opened(self, connection: ServerConnection, dialect: Dialect, engine: EngineConnection) -> None:
        request = connection.request
        assert request is not None
        record = ConnectionRecord(request.path, dialect, dict(request.headers.raw_items()), session=engine,
                                  connection=connection)
        self._records[connection] = record
        if self.record:
            self.connections.append(record)
        if self.drop_every_seconds is not None:
            self._drops[connection] = asyncio.ensure_future(self._drop_after(connection, self.drop_every_seconds))

    def closed(self, connection: ServerConnection) -> None:
        self._records.pop(connection, None)
        if (drop := self._drops.pop(connection, None)) is not None:
            drop.cancel()

    async def send(self, connection: ServerConnection, event: Event) -> None:
        cut = self.cut if self.cut is not None and self.cut.matches(event, sent=True) else None
        if cut is not None and not cut.after:
            self._cut_now(connection, cut)
            return
        if self.record and (record := self._records.get(connection)) is not None:
            record.sent.append(json.loads(json.dumps(event)))  # a snapshot: the engine mutates its items later
        await super().send(connection, event)
        if cut is not None:
            self._cut_now(connection, cut)

    async def receive(self, connection: ServerConnection, engine: EngineConnection, event: Event) -> None:
        if self.record and (record := self._records.get(connection)) is not None:
            record.received.append(event)
            record.received_at.append(time.time())
            if event.get("type") == "input_audio_buffer.append":
                with contextlib.suppress(ValueError):
                    record.audio.append(decode_pcm16(event.get("audio", "")))
        if self.cut is not None and self.cut.matches(event, sent=False):
            self._cut_now(connection, self.cut)
            return
        await super().receive(connection, engine, event)

    def cut_at(self, point: CutPoint) -> CutPoint:
        """Cut the connection that next gets to `point` (once); returns it, to wait on `reached`."""
        self.cut = point
        return point

    @staticmethod
    def _cut_now(connection: ServerConnection, point: CutPoint) -> None:
        point.reached.set()
        connection.transport.abort()

    @staticmethod
    async def _drop_after(connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        connection.transport.abort()  # like a network drop: no close frame, the client sees 1006

    async def drop_all(self, code: int = 1011) -> None:
        """Close every live connection as a failing service would (tests of reconnect)."""
        for connection in list(self._records):
            with contextlib.suppress(Exception):
                await connection.close(code=code, reason="server restart")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy; returns its value."""
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                await asyncio.sleep(0.01)
        return value
