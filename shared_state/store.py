"""The Redis connection of one replica, and whether Redis can be reached right now.

Every command goes through `run`: when Redis cannot be reached the caller gets `ok=False` and carries on in
memory; the change (down, back) is logged once, not at every command, and listeners are told.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")
PREFIX = "va:"  # every key of this app starts so, to share a Redis with others
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0


class SharedStore:
    """A lazily opened asyncio Redis client (the `redis` package is imported only when REDIS_URL is set)."""

    def __init__(self, url: str, replica: str = "") -> None:
        self._url = url  # never logged: it may carry a password
        self.replica = replica or uuid.uuid4().hex[:12]  # names this process's voice slots
        self.up = True  # until a command fails
        self.listeners: list[Callable[[bool], None]] = []
        self._redis: Redis | None = None

    def key(self, *parts: str) -> str:
        return PREFIX + ":".join(parts)

    def _client(self) -> Redis:
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(
                self._url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT_SECONDS, retry_on_timeout=False)
        return self._redis

    async def run(self, operation: Callable[[Redis], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result), or (False, None) when Redis is unreachable or refused the command."""
        client = self._client()
        try:
            result = await operation(client)
        except Exception as exc:  # unreachable, a wrong password, a full Redis: the same for us, memory only
            self._set_up(False, exc)
            return False, None
        self._set_up(True)
        return True, result

    def _set_up(self, up: bool, exc: BaseException | None = None) -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            log.info("Redis に再接続しました。会話の共有を再開します (Redis is reachable again)")
        else:
            log.error("Redis に接続できません。会話はこのプロセスのメモリで続けます (Redis unreachable: %s)",
                      type(exc).__name__)
        for listener in list(self.listeners):
            listener(up)

    async def delete(self, *keys: str) -> None:
        await self.run(lambda r: r.delete(*keys))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

