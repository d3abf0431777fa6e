"""One WebSocket connection to a Realtime service, opened through the `openai` SDK.

Azure GA, Azure preview and OpenAI GA differ only in how the client is built; received events
are handed on as typed values (events.py), whatever the dialect (dialect.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from openai import AsyncAzureOpenAI, AsyncOpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.dialect import Event, to_internal
from realtime.events import MalformedEvent, ServerEvent, parse
from settings import RealtimeSettings

log = logging.getLogger(__name__)


class ConnectFailure(StrEnum):
    """Why a connection attempt failed; web/ says it in Japanese."""

    AUTH = "auth"  # HTTP 401/403: the key
    NOT_FOUND = "not_found"  # HTTP 404: the endpoint or deployment
    RATE_LIMITED = "rate_limited"  # HTTP 429
    REFUSED = "refused"  # any other HTTP status
    TIMEOUT = "timeout"
    NETWORK = "network"  # DNS, refused socket, TLS…
    OTHER = "other"  # `detail` names the exception's type


class ConnectError(Exception):
    """A connection attempt failed: `failure` says why, `detail` adds the HTTP status or the exception's type
    (never the URL's query or a key); `str()` is for logs.

    `retry` says whether trying again later may help (network, rate limit) or not (auth, URL).
    """

    def __init__(self, failure: ConnectFailure, detail: str = "", *, retry: bool) -> None:
        super().__init__(f"{failure} {detail}".strip())
        self.failure, self.detail, self.retry = failure, detail, retry


def _websocket_base(endpoint: str, path: str) -> str:
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    scheme = "ws" if parsed.scheme in ("http", "ws") else "wss"
    return f"{scheme}://{parsed.netloc}{path}"


def open_manager(settings: RealtimeSettings) -> Any:
    """The SDK's connection manager for the configured provider and dialect."""
    if settings.provider == "azure" and settings.dialect == "preview":
        client = AsyncAzureOpenAI(
            azure_endpoint=settings.endpoint,
            api_key=settings.api_key,
            api_version=settings.api_version,
            azure_deployment=settings.model,
            websocket_base_url=_websocket_base(settings.endpoint, "/openai"),
        )
        return client.beta.realtime.connect(model=settings.model)
    if settings.provider == "azure":
        # AsyncAzureOpenAI builds the preview URL; GA lives at /openai/v1 with the key in `api-key`.
        client = AsyncOpenAI(
            api_key=settings.api_key,
            websocket_base_url=_websocket_base(settings.endpoint, "/openai/v1"),
            default_headers={"api-key": settings.api_key},
        )
        return client.realtime.connect(model=settings.model)
    base = settings.base_url or None
    client = AsyncOpenAI(api_key=settings.api_key, base_url=base)
    return client.realtime.connect(model=settings.model)


def describe_failure(exc: BaseException) -> ConnectError:
    """Turn a handshake/network failure into a typed error (never the URL's query or a key)."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return ConnectError(ConnectFailure.AUTH, str(status), retry=False)
        if status == 404:
            return ConnectError(ConnectFailure.NOT_FOUND, str(status), retry=False)
        if status == 429:
            return ConnectError(ConnectFailure.RATE_LIMITED, str(status), retry=True)
        return ConnectError(ConnectFailure.REFUSED, str(status), retry=status >= 500)
    if isinstance(exc, TimeoutError):
        return ConnectError(ConnectFailure.TIMEOUT, retry=True)
    if isinstance(exc, OSError):
        return ConnectError(ConnectFailure.NETWORK, retry=True)
    return ConnectError(ConnectFailure.OTHER, type(exc).__name__, retry=True)


class RealtimeConnection:
    """A live connection: `send` dicts, iterate `events()`; a new one is a blank service session."""

    def __init__(self, settings: RealtimeSettings, debug: bool = False) -> None:
        self._settings = settings
        self._debug = debug
        self._manager: Any = None
        self._conn: Any = None
        self._opened_at = 0.0

    async def open(self, timeout: float = 15.0) -> None:
        import asyncio

        self._manager = open_manager(self._settings)
        try:
            async with asyncio.timeout(timeout):
                self._conn = await self._manager.enter()
        except Exception as exc:  # every handshake failure becomes one clear message
            raise describe_failure(exc) from None
        self._opened_at = time.monotonic()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def send(self, event: Event) -> None:
        if self._conn is None:
            raise ConnectionError("not connected")
        if self._debug:  # event types and timings only: never audio payloads or keys
            log.debug("→ %s +%.3fs", event.get("type"), time.monotonic() - self._opened_at)
        send_raw = getattr(self._conn, "send_raw", None)  # the GA connection; the preview one lacks it
        try:
            if send_raw is not None:
                await send_raw(json.dumps(event, ensure_ascii=False))
            else:
                await self._conn.send(event)
        except ConnectionClosed as closed:  # callers handle one kind of "not connected"
            raise ConnectionError("realtime connection closed") from closed

    async def events(self) -> AsyncIterator[ServerEvent]:
        """The received events the conversation handles, typed, until the connection closes (then returns)."""
        conn = self._conn  # close() clears the attribute while a receive may still be finishing
        if conn is None:
            return
        try:
            while True:
                raw = await conn.recv_bytes()
                try:
                    event = json.loads(raw)
                except ValueError:
                    log.warning("dropped a received event that is not JSON (%d bytes)", len(raw))
                    continue
                if not isinstance(event, dict):
                    log.warning("dropped a received event that is not a JSON object")
                    continue
                raw_event = to_internal(event, self._settings.dialect)
                try:
                    typed = parse(raw_event)
                except MalformedEvent as problem:
                    log.warning("dropped a malformed event: %s", problem)
                    continue
                if self._debug:
                    log.debug("← %s +%.3fs", raw_event.get("type"), time.monotonic() - self._opened_at)
                if typed is not None:
                    yield typed
        except ConnectionClosed as closed:
            log.info("realtime connection closed (code %s)", closed.rcvd.code if closed.rcvd else None)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing a dead socket is not an error worth surfacing
                log.debug("close failed", exc_info=True)
