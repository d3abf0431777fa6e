"""A local Realtime-API server on a loopback port: the offline engine and the tests' service.

It accepts the URLs the `openai` SDK builds for OpenAI GA (`/v1/realtime?model=`), Azure GA
(`/openai/v1/realtime?model=`) and Azure preview (`/openai/realtime?api-version=&deployment=`),
checks the key like the service does, and runs one blank EngineConnection per connection.
Stand-in behaviours of the real service (no metadata echo, the session cap, network drops) and
recording what each connection exchanged are opt-in, so the offline app keeps no history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.http11 import Request, Response

from audio import decode_pcm16
from offline.engine import Assistant, EngineConnection, Event, Transcriber, TurnDetector, Voice, parse_json
from offline.usage import UsageMeter
from offline.wire import Dialect

log = logging.getLogger(__name__)


class _ClientLeftDuringHandshake(logging.Filter):
    """websockets logs a client that goes away mid-handshake as an ERROR with a traceback. For this server that is
    the app closing a connection it no longer needs (a page closed while its conversation connected): one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        left = isinstance(error, ConnectionClosed) or (
            isinstance(error, InvalidMessage) and isinstance(error.__cause__, EOFError))
        if record.getMessage() == "opening handshake failed" and left:
            log.debug("a client left during the opening handshake: %s", error)
            return False
        return True


handshake_log = logging.getLogger(f"{__name__}.handshake")  # this server's own websockets logger
handshake_log.addFilter(_ClientLeftDuringHandshake())


@dataclass
class ConnectionRecord:
    """What one client connection exchanged (kept only when the server records), for tests and diagnostics."""

    path: str
    dialect: Dialect
    headers: dict[str, str]
    received: list[Event] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)  # time.time() of each received event
    audio: list[np.ndarray] = field(default_factory=list)
    sent: list[Event] = field(default_factory=list)  # as they went out on the wire
    session: EngineConnection | None = None
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
    """Where the server cuts a connection once, with no close frame, as a network drop looks (tests).

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


def dialect_of(path: str, headers: Headers) -> Dialect | None:
    """Which dialect a handshake asks for, or None when the path is not a realtime endpoint."""
    url = urlparse(path)
    query = parse_qs(url.query)
    if url.path.rstrip("/") == "/openai/realtime":
        return "preview" if "api-version" in query and "deployment" in query else None
    if url.path.rstrip("/") in ("/v1/realtime", "/openai/v1/realtime"):
        if "api-version" in query or "model" not in query:
            return None
        return "preview" if "realtime=v1" in headers.get("OpenAI-Beta", "") else "ga"
    return None


def cap_reason(seconds: float) -> str:
    """The service's wording when it ends a session at its cap."""
    span = f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
    return f"Your session hit the maximum duration of {span}."


class RealtimeServer:
    """Serve the Realtime protocol on 127.0.0.1; `make_assistant` etc. build each connection's parts.

    Args:
        record: keep every connection's events and decoded audio in `connections` (tests only: it grows).
        echo_metadata: echo `response.create` metadata on response objects (False: like old preview versions).
        session_max_seconds: end each session this long after it opens (error `session_expired`, close 1001).
        drop_every_seconds: cut each connection this long after it opens, with no close handshake.
        context_token_limit: the model's input window in tokens, where `session.truncation` starts dropping.
        created_delay_seconds: wait this long before `response.created` (the service's round trip).
    """

    def __init__(
        self,
        make_assistant: Callable[[], Assistant],
        make_voice: Callable[[], Voice],
        make_detector: Callable[[], TurnDetector | None],
        transcriber: Transcriber | None = None,
        api_key: str | None = None,
        speed: float = 4.0,
        *,
        record: bool = False,
        echo_metadata: bool = True,
        session_max_seconds: float | None = None,
        drop_every_seconds: float | None = None,
        context_token_limit: int = 32_000,
        created_delay_seconds: float = 0.0,
    ) -> None:
        self._make_assistant, self._make_voice, self._make_detector = make_assistant, make_voice, make_detector
        self.transcriber = transcriber
        self.api_key = api_key
        self.speed = speed
        self.record = record
        self.echo_metadata = echo_metadata
        self.session_max_seconds = session_max_seconds
        self.drop_every_seconds = drop_every_seconds
        self.context_token_limit = context_token_limit
        self.created_delay_seconds = created_delay_seconds
        self.reject_status: int | None = None  # tests: answer every handshake with this HTTP status
        self.cut: CutPoint | None = None  # tests: where to cut a connection next (`cut_at`)
        self.connections: list[ConnectionRecord] = []  # every connection so far, when recording
        self._live: set[ServerConnection] = set()
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._live)

    async def start(self, port: int = 0) -> None:
        self._server = await serve(self._handle, "127.0.0.1", port, process_request=self._check,
                                   max_size=None, ping_interval=20, logger=handshake_log)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.reject_status:
            status = HTTPStatus(self.reject_status)
            return connection.respond(status, json.dumps({"error": {"code": str(status.value),
                                                                    "message": status.phrase}}))
        if dialect_of(request.path, request.headers) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Resource not found\n")
        if self.api_key is not None:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if self.api_key not in (request.headers.get("api-key"), bearer):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "Access denied due to invalid subscription key\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        dialect = dialect_of(request.path, request.headers) or "ga"
        record = ConnectionRecord(request.path, dialect, dict(request.headers.raw_items()), connection=connection)
        if self.record:
            self.connections.append(record)

        async def emit(event: Event) -> None:
            cut = self.cut if self.cut is not None and self.cut.matches(event, sent=True) else None
            if cut is not None and not cut.after:
                self._cut_now(connection, cut)
                return
            message = json.dumps(event, ensure_ascii=False)
            if self.record:
                record.sent.append(json.loads(message))  # a snapshot: the engine mutates its items later
            with contextlib.suppress(Exception):
                await connection.send(message)
            if cut is not None:
                self._cut_now(connection, cut)

        session = EngineConnection(dialect, emit, self._make_assistant(), self._make_voice(), self._make_detector(),
                                   self.transcriber, speed=self.speed, echo_metadata=self.echo_metadata,
                                   created_delay=self.created_delay_seconds, usage=UsageMeter(self.context_token_limit))
        record.session = session
        self._live.add(connection)
        timers = []
        if self.session_max_seconds is not None:
            timers.append(asyncio.ensure_future(self._expire(session, connection, self.session_max_seconds)))
        if self.drop_every_seconds is not None:
            timers.append(asyncio.ensure_future(self._drop_after(connection, self.drop_every_seconds)))
        await session.start()
        try:
            async for message in connection:
                await self._receive(record, session, message)
                if connection.transport.is_closing():  # cut: nothing more is read on this connection
                    break
        except Exception:  # a broken client must not take the server down
            log.debug("connection ended", exc_info=True)
        finally:
            self._live.discard(connection)
            for timer in timers:
                timer.cancel()
            await session.close()

    async def _receive(self, record: ConnectionRecord, session: EngineConnection, message: str | bytes) -> None:
        event = parse_json(message)
        if event is None:
            await session.error("invalid_json", "The message is not a JSON object.")
            return
        if self.record:
            record.received.append(event)
            record.received_at.append(time.time())
            if event.get("type") == "input_audio_buffer.append":
                with contextlib.suppress(ValueError):
                    record.audio.append(decode_pcm16(event.get("audio", "")))
        if self.cut is not None and self.cut.matches(event, sent=False):
            self._cut_now(record.connection, self.cut)
            return
        await session.handle(event)

    @staticmethod
    async def _expire(session: EngineConnection, connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        reason = cap_reason(seconds)
        await session.error("session_expired", reason)
        with contextlib.suppress(Exception):
            await connection.close(code=1001, reason=reason)

    def cut_at(self, point: CutPoint) -> CutPoint:
        """Cut the connection that next gets to `point` (once); returns it, to wait on `reached`."""
        self.cut = point
        return point

    @staticmethod
    def _cut_now(connection: ServerConnection | None, point: CutPoint) -> None:
        point.reached.set()
        if connection is not None:
            connection.transport.abort()

    @staticmethod
    async def _drop_after(connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        connection.transport.abort()  # like a network drop: no close frame, the client sees 1006

    async def drop_all(self, code: int = 1011) -> None:
        """Close every live connection as a failing service would (tests of reconnect)."""
        for connection in list(self._live):
            with contextlib.suppress(Exception):
                await connection.close(code=code, reason="server restart")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (tests); returns its value."""
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                await asyncio.sleep(0.01)
        return value
