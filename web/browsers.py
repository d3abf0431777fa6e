"""Which conversation belongs to which browser (or API client) session, and when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from conversation.conversation import Conversation
from settings import RealtimeSettings
from tools import Toolbox

log = logging.getLogger(__name__)


class BrowserSessions:
    """One Conversation per Gradio session hash; idle ones are closed by a reaper task."""

    def __init__(
        self,
        settings: Callable[[], RealtimeSettings],
        tools: Toolbox | None = None,
        idle_timeout: float = 600.0,
        debug: bool = False,
    ) -> None:
        self._settings = settings
        self._tools = tools  # None: the built-in tools with default settings
        self._idle_timeout = idle_timeout
        self._debug = debug
        self._sessions: dict[str, Conversation] = {}
        self._reaper: asyncio.Task | None = None
        self._gone: set[str] = set()

    def get(self, session_hash: str) -> Conversation:
        """The live session for this browser session, created (and connecting) on first use."""
        self._gone.discard(session_hash)
        session = self._sessions.get(session_hash)
        if session is None or session.closed:
            session = Conversation(self._settings(), tools=self._tools, debug=self._debug)
            self._sessions[session_hash] = session
        session.start()
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="idle session reaper")
        return session

    def peek(self, session_hash: str) -> Conversation | None:
        session = self._sessions.get(session_hash)
        return None if session is None or session.closed else session

    async def close(self, session_hash: str, gone: bool = False) -> None:
        """End the session's conversation; `gone` when the page itself went away."""
        if gone:
            self._gone.add(session_hash)
        session = self._sessions.pop(session_hash, None)
        if session is not None:
            await session.close()

    async def next_session(self, session_hash: str, old: Conversation) -> Conversation | None:
        """After `old` ended: the one that replaces it (reset, or use after an idle close), None if the page left."""
        while session_hash not in self._gone:
            current = self._sessions.get(session_hash)
            if current is not None and current is not old and not current.closed:
                return current
            await asyncio.sleep(0.2)
        return None

    async def reset(self, session_hash: str) -> Conversation:
        """Start a new conversation for this browser session (the old one is closed)."""
        old = self._sessions.get(session_hash)
        voice = bool(old and old.voice_attached)
        await self.close(session_hash)
        session = self.get(session_hash)
        session.voice_attached = voice
        return session

    @property
    def voice_sessions(self) -> int:
        return sum(s.voice_attached and not s.closed for s in self._sessions.values())

    @property
    def live(self) -> int:
        return sum(not s.closed for s in self._sessions.values())

    async def _reap(self) -> None:
        while self._sessions:
            await asyncio.sleep(min(30.0, self._idle_timeout / 2))
            now = time.monotonic()
            for session_hash, session in list(self._sessions.items()):
                idle = now - session.last_activity > self._idle_timeout
                if session.closed or (idle and not session.voice_attached and not session.tools.running):
                    log.info("closing idle session")
                    await self.close(session_hash)

    async def close_all(self) -> None:
        for session_hash in list(self._sessions):
            await self.close(session_hash)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
