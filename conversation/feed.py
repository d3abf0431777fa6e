"""Change notification for UIs: each subscriber is woken (coalesced) when the conversation changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from conversation.link import ConnectionState
from conversation.notices import Notice
from conversation.tool_runner import ToolCall
from conversation.transcript import Message


@dataclass(frozen=True)
class Snapshot:
    """What a UI shows of a conversation at one moment."""

    messages: list[Message]  # web/chat.py renders them
    calls: list[ToolCall]
    state: ConnectionState
    notice: Notice | None  # web/labels.py words it


class ChangeFeed:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Event] = set()
        self._closed = False

    def changed(self) -> None:
        for event in self._subscribers:
            event.set()

    async def changes(self, tick: Callable[[], float | None]) -> AsyncIterator[None]:
        """Yields at once, then after every change (several changes make one yield), and every
        `tick()` seconds while it returns a number; a last time when the feed closes."""
        changed = asyncio.Event()
        changed.set()
        self._subscribers.add(changed)
        try:
            while not self._closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick()):
                        await changed.wait()
                changed.clear()
                yield
            yield
        finally:
            self._subscribers.discard(changed)

    def close(self) -> None:
        self._closed = True
        self.changed()
