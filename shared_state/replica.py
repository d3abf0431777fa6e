"""What one replica of a cluster shares through Redis (only when REDIS_URL is set): the voice-call limit and
every conversation, so another replica can take a conversation over when this one dies or is restarted.

The registry of browser sessions (web/browsers.py) calls in at four points: a conversation is created
(`adopt`: restore it from Redis, then start it and record it), a conversation is ended on purpose (`forget`),
a voice call asks for a slot (`place_call`) and hangs up (`release_call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from conversation.conversation import Conversation
from conversation.notices import Notice, NoticeKind
from shared_state.history import ConversationRecord
from shared_state.store import SharedStore
from shared_state.voice_slots import VoiceSlots

log = logging.getLogger(__name__)

RESTORE_SECONDS = 3.0  # a slow Redis must not keep a conversation from starting
STORE_DOWN = Notice(NoticeKind.SHARED_STORE_DOWN)


class Call(Protocol):
    webrtc_id: str
    limit: int
    placed: asyncio.Future[bool]


class SharedState:
    def __init__(self, url: str, ttl: float) -> None:
        self.store = SharedStore(url)
        self.slots = VoiceSlots(self.store)
        self._ttl = ttl
        self._starting: set[Conversation] = set()
        self._live: dict[Conversation, ConversationRecord] = {}
        self._tasks: set[asyncio.Task] = set()
        self.store.listeners.append(self._store_changed)

    def _spawn(self, coroutine, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- conversations ---------------------------------------------------------------------------

    def adopt(self, owner: str, conversation: Conversation) -> None:
        """A new conversation of `owner`: what Redis holds of it is restored before it starts (its first
        service session then gets the history replayed), and from then on it is written as it changes."""
        self._starting.add(conversation)
        self._spawn(self._adopt(owner, conversation), "restore and record a conversation")

    def starting(self, conversation: Conversation) -> bool:
        """True while the conversation waits for its history (the adopter starts it)."""
        return conversation in self._starting

    async def _adopt(self, owner: str, conversation: Conversation) -> None:
        record = ConversationRecord(self.store, owner, self._ttl)
        restored = 0
        try:
            async with asyncio.timeout(RESTORE_SECONDS):
                restored = await record.restore(conversation)
        except TimeoutError:
            log.warning("Redis did not answer in %.0f s: the conversation starts without its history", RESTORE_SECONDS)
        finally:
            self._starting.discard(conversation)
            conversation.start()
        if restored:
            log.info("took over a conversation from Redis (%d items)", restored)
            conversation.feed.changed()
        if not self.store.up:
            self._show_notice(conversation, True)
        self._live[conversation] = record
        try:
            await record.follow(conversation)
        finally:
            self._live.pop(conversation, None)

    async def forget(self, owner: str, idle: Conversation | None = None) -> None:
        """The owner ended the conversation (a new one), or `idle` is being closed for inactivity: no other
        replica may restore it, and it writes nothing more. An idle copy that another replica took over
        (its sessions moved there) leaves the record alone."""
        record = self._live.get(idle) if idle is not None else None
        if idle is not None and (record is None or not await record.ours()):
            return
        for live in self._live.values():
            if live.owner == owner:
                live.stop()
        await self.store.delete(*ConversationRecord(self.store, owner, self._ttl).keys)

    def _store_changed(self, up: bool) -> None:
        for conversation, record in list(self._live.items()):
            if up:
                record.rewrite()
            self._show_notice(conversation, not up)  # wakes the record's writer, too

    def _show_notice(self, conversation: Conversation, down: bool) -> None:
        link = conversation.link
        if down and not link.notice:
            link.notice = STORE_DOWN
        elif not down and link.notice == STORE_DOWN:
            link.notice = None
        conversation.feed.changed()

    # ---- voice calls -----------------------------------------------------------------------------

    def place_call(self, call: Call, owner: str, place: Callable[[Call, str], None]) -> None:
        """Ask the cluster for a slot; then `place` the call, or refuse it when the cluster is full."""

        async def claim() -> None:
            granted = await self.slots.claim(call.webrtc_id, call.limit)
            if call.placed.done():  # hung up while asking
                await self.slots.release(call.webrtc_id)
            elif granted:
                place(call, owner)
            else:
                call.placed.set_result(False)

        self._spawn(claim(), "claim a voice slot")

    def release_call(self, call: Call) -> None:
        self._spawn(self.slots.release(call.webrtc_id), "release a voice slot")

    async def close(self) -> None:
        """The process stops: voice slots go back now; conversations stay in Redis for the other replicas."""
        await self.slots.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
