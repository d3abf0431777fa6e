"""A local Realtime-API server on a loopback port: the offline engine and the tests' service.

It accepts the URLs the `openai` SDK builds for OpenAI GA (`/v1/realtime?model=`), Azure GA
(`/openai/v1/realtime?model=`) and Azure preview (`/openai/realtime?api-version=&deployment=`),
checks the key like the service does, and runs one blank EngineConnection per connection.
Stand-in behaviours of the real service (no metadata echo, the session cap, its round trip) are opt-in; they stay
here because they describe the service a client must cope with, not a test's switch.
It keeps no history: what only tests need (recording, refusals, drops, cuts) lives in tests/support/service.py,
a subclass that overrides the few extension points below (`refuse`, `opened`, `closed`, `send`, `receive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidMessage
from websockets.http11 import Request, Response

from offline.engine import Assistant, EngineConnection, Event, SpeechDetector, Transcriber, Voice, parse_json
from offline.usage import TokenBiller
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
        echo_metadata: echo `response.create` metadata on response objects (False: like old preview versions).
        session_max_seconds: end each session this long after it opens (error `session_expired`, close 1001).
        context_token_limit: the model's input window in tokens, where `session.truncation` starts dropping.
        created_delay_seconds: wait this long before `response.created` (the service's round trip).
    """

    def __init__(
        self,
        make_assistant: Callable[[], Assistant],
        make_voice: Callable[[], Voice],
        make_detector: Callable[[], SpeechDetector | None],
        transcriber: Transcriber | None = None,
        api_key: str | None = None,
        speed: float = 4.0,
        *,
        echo_metadata: bool = True,
        session_max_seconds: float | None = None,
        context_token_limit: int = 32_000,
        created_delay_seconds: float = 0.0,
    ) -> None:
        self._make_assistant, self._make_voice, self._make_detector = make_assistant, make_voice, make_detector
        self.transcriber = transcriber
        self.api_key = api_key
        self.speed = speed
        self.echo_metadata = echo_metadata
        self.session_max_seconds = session_max_seconds
        self.context_token_limit = context_token_limit
        self.created_delay_seconds = created_delay_seconds
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
        if (refusal := self.refuse(connection, request)) is not None:
            return refusal
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

        async def emit(event: Event) -> None:
            await self.send(connection, event)

        engine = EngineConnection(dialect, emit, self._make_assistant(), self._make_voice(), self._make_detector(),
                                  self.transcriber, speed=self.speed, echo_metadata=self.echo_metadata,
                                  created_delay=self.created_delay_seconds,
                                  biller=TokenBiller(self.context_token_limit))
        self._live.add(connection)
        self.opened(connection, dialect, engine)
        expiry = None
        if self.session_max_seconds is not None:
            expiry = asyncio.ensure_future(self._expire(engine, connection, self.session_max_seconds))
        await engine.start()
        try:
            async for message in connection:
                event = parse_json(message)
                if event is None:
                    await engine.error("invalid_json", "The message is not a JSON object.")
                    continue
                await self.receive(connection, engine, event)
                if connection.transport.is_closing():  # aborted: nothing more is read on this connection
                    break
        except Exception:  # a broken client must not take the server down
            log.debug("connection ended", exc_info=True)
        finally:
            self._live.discard(connection)
            if expiry is not None:
                expiry.cancel()
            self.closed(connection)
            await engine.close()

    # ---- extension points: the product needs none of them; tests/support/service.py overrides them -------------

    def refuse(self, connection: ServerConnection, request: Request) -> Response | None:
        """An HTTP answer instead of the handshake (None: go on with the usual checks)."""
        return None

    def opened(self, connection: ServerConnection, dialect: Dialect, engine: EngineConnection) -> None:
        """A connection was accepted; `engine` is its service session."""

    def closed(self, connection: ServerConnection) -> None:
        """A connection ended (whoever ended it)."""

    async def send(self, connection: ServerConnection, event: Event) -> None:
        """Send one server event, as it goes out on the wire; a client that has gone is not an error here."""
        with contextlib.suppress(Exception):
            await connection.send(json.dumps(event, ensure_ascii=False))

    async def receive(self, connection: ServerConnection, engine: EngineConnection, event: Event) -> None:
        """Hand one client event (a parsed JSON object) to the connection's engine."""
        await engine.handle(event)

    @staticmethod
    async def _expire(engine: EngineConnection, connection: ServerConnection, seconds: float) -> None:
        await asyncio.sleep(seconds)
        reason = cap_reason(seconds)
        await engine.error("session_expired", reason)
        with contextlib.suppress(Exception):
            await connection.close(code=1001, reason=reason)
