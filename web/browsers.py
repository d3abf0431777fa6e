"""Which conversation belongs to which browser (or API client) session, its voice calls, and when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conversation.conversation import Conversation, Snapshot
from settings import RealtimeSettings
from tools import Toolbox

if TYPE_CHECKING:  # only a cluster (REDIS_URL) has shared state
    from shared_state.replica import SharedState

log = logging.getLogger(__name__)

Follow = Callable[[Conversation | None], None]


class VoiceCall:
    """One WebRTC call from offer to hang-up. Once placed in a browser session it speaks to that session's
    current conversation, whichever it is: the registry calls `follow` with each new one (None: none left)."""

    def __init__(self, webrtc_id: str, follow: Follow, limit: int, hang_up: Callable[[], None]) -> None:
        self.webrtc_id = webrtc_id
        self.follow = follow
        self.limit = limit  # voice calls allowed at once, this one included
        self.hang_up = hang_up  # ends the WebRTC call itself (its page went away without hanging up)
        self.session_hash = ""
        # True once joined to a browser session, False when refused because `limit` calls are already up.
        self.placed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class BrowserSession:
    """What one browser tab (or API client) has: its current conversation and the voice calls joined to it."""

    conversation: Conversation | None = None
    calls: list[VoiceCall] = field(default_factory=list)
    gone: bool = False  # the page went away (its calls may still be hanging up)
    watchers: int = 0  # pages waiting for the next conversation
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced by a fresh one at each change

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class BrowserSessions:
    """One Conversation per Gradio session hash; the owner of voice attachment; idle ones are closed by a reaper."""

    def __init__(
        self,
        settings: Callable[[], RealtimeSettings],
        tools: Toolbox | None = None,
        idle_timeout: float = 600.0,
        debug: bool = False,
        shared: SharedState | None = None,
    ) -> None:
        self._settings = settings
        self._tools = tools  # None: the built-in tools with default settings
        self._idle_timeout = idle_timeout
        self._debug = debug
        self._browsers: dict[str, BrowserSession] = {}
        self._unplaced: dict[str, VoiceCall] = {}  # calls waiting for their page to say whose they are
        self._reaper: asyncio.Task | None = None
        self._shared = shared  # the cluster's Redis: conversations survive this process, voice slots are counted

    @property
    def tools(self) -> Toolbox | None:
        """The tools every conversation here is offered (None: the built-in defaults)."""
        return self._tools

    def get(self, session_hash: str) -> Conversation:
        """The live conversation of this browser session, created (and connecting) on first use."""
        browser = self._browsers.setdefault(session_hash, BrowserSession())
        browser.gone = False
        conversation = browser.conversation
        if conversation is None or conversation.closed:
            conversation = Conversation(self._settings(), tools=self._tools, debug=self._debug)
            browser.conversation = conversation
            conversation.voice_attached = bool(browser.calls)
            for call in browser.calls:  # a call goes on in the new conversation
                call.follow(conversation)
            browser.notify()
            if self._shared is not None:  # another replica may have had it: restored first, then started
                self._shared.adopt(session_hash, conversation)
        if self._shared is None or not self._shared.starting(conversation):
            conversation.start()
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="idle conversation reaper")
        return conversation

    def peek(self, session_hash: str) -> Conversation | None:
        browser = self._browsers.get(session_hash)
        conversation = browser.conversation if browser else None
        return None if conversation is None or conversation.closed else conversation

    async def close(self, session_hash: str, gone: bool = False) -> None:
        """End the browser session's conversation; `gone` when the page itself went away."""
        browser = self._browsers.get(session_hash)
        if browser is None:
            return
        conversation, browser.conversation = browser.conversation, None
        for call in browser.calls:
            call.follow(None)
        if gone:
            browser.gone = True
            for call in list(browser.calls):  # a page that went away never hangs up: its calls end now
                log.info("the page went away: ending its voice call")
                self.end_call(call)
                call.hang_up()
            self._forget_if_done(session_hash)
        browser.notify()
        if conversation is not None:
            conversation.voice_attached = False
            await conversation.close()

    async def _next_session(self, session_hash: str, old: Conversation) -> Conversation | None:
        """After `old` ended: the one that replaces it (reset, or use after an idle close), None if the page left."""
        browser = self._browsers.get(session_hash)
        if browser is None:
            return None
        browser.watchers += 1
        try:
            while not browser.gone:
                current, changed = browser.conversation, browser.changed
                if current is not None and current is not old and not current.closed:
                    return current
                await changed.wait()
            return None
        finally:
            browser.watchers -= 1

    async def updates(self, session_hash: str) -> AsyncIterator[tuple[Conversation, Snapshot]]:
        """The browser session's snapshots for the page's lifetime, following it into each new conversation."""
        conversation: Conversation | None = self.get(session_hash)
        while conversation is not None:
            async for snapshot in conversation.updates():
                yield conversation, snapshot
            conversation = await self._next_session(session_hash, conversation)

    async def reset(self, session_hash: str) -> Conversation:
        """Start a new conversation for this browser session (the old one is closed; a voice call moves over)."""
        await self.close(session_hash)
        if self._shared is not None:
            await self._shared.forget(session_hash)
        return self.get(session_hash)

    # ---- voice calls ---------------------------------------------------------------------------

    def open_call(self, webrtc_id: str, follow: Follow, limit: int,
                  hang_up: Callable[[], None] = lambda: None) -> VoiceCall:
        """A new WebRTC call; it waits (`placed`) until the page's tick event says whose it is (`place_call`)."""
        call = VoiceCall(webrtc_id, follow, limit, hang_up)
        self._unplaced[webrtc_id] = call
        return call

    def place_call(self, webrtc_id: str, session_hash: str) -> None:
        """The page of `session_hash` owns call `webrtc_id`: join it to the page's conversation (or refuse it)."""
        if not session_hash:
            return  # a tick without a session says nothing: the call waits for one that has it
        call = self._unplaced.pop(webrtc_id, None)
        if call is None or call.placed.done():
            return  # an unknown or already placed call: nothing to do (the id is not ours to trust twice)
        if self.voice_calls >= call.limit:
            call.placed.set_result(False)
            return
        if self._shared is not None:  # the cluster's limit holds too: placed once Redis grants a slot
            self._shared.place_call(call, session_hash, self._place)
            return
        self._place(call, session_hash)

    def _place(self, call: VoiceCall, session_hash: str) -> None:
        conversation = self.get(session_hash)
        call.session_hash = session_hash
        self._browsers[session_hash].calls.append(call)
        conversation.voice_attached = True
        call.placed.set_result(True)
        call.follow(conversation)

    def end_call(self, call: VoiceCall) -> None:
        """The call hung up: its voice slot is free, and its conversation is no longer listened to."""
        self._unplaced.pop(call.webrtc_id, None)
        if not call.placed.done():
            call.placed.cancel()
        if self._shared is not None:
            self._shared.release_call(call)
        browser = self._browsers.get(call.session_hash)
        if browser is None or call not in browser.calls:
            return
        browser.calls.remove(call)
        if browser.conversation is not None and not browser.calls:
            browser.conversation.voice_attached = False
        self._forget_if_done(call.session_hash)

    @property
    def voice_calls(self) -> int:
        return sum(len(browser.calls) for browser in self._browsers.values())

    @property
    def live(self) -> int:
        return sum(1 for browser in self._browsers.values() if browser.conversation and not browser.conversation.closed)

    def _forget_if_done(self, session_hash: str) -> None:
        browser = self._browsers.get(session_hash)
        if browser is not None and browser.gone and not browser.calls:
            del self._browsers[session_hash]

    async def _reap(self) -> None:
        while self._browsers:
            await asyncio.sleep(min(30.0, self._idle_timeout / 2))
            now = time.monotonic()
            for session_hash, browser in list(self._browsers.items()):
                conversation = browser.conversation
                if browser.calls:
                    continue
                if conversation is None:
                    if not browser.watchers:  # closed earlier and nobody waits for a next one (an API client)
                        del self._browsers[session_hash]
                    continue
                idle = now - conversation.last_activity > self._idle_timeout
                if conversation.closed or (idle and not conversation.tools.running):
                    log.info("closing idle conversation")
                    if self._shared is not None:
                        await self._shared.forget(session_hash, idle=conversation)
                    await self.close(session_hash)

    async def close_all(self) -> None:
        for session_hash in list(self._browsers):
            await self.close(session_hash, gone=True)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._shared is not None:
            await self._shared.close()
