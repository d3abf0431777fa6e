"""One conversation with a Realtime service, shared by voice and text, independent of the UI.

It owns the transcript, the turns, the response gate, the function calls and the assistant's
audio playback; its link keeps a service session under it. Two loops drive it: what the link
yields (sessions starting and ending, and typed service events, which service_events.py applies
to the parts) and what the gate decides (a response to ask for now, or one given up). Its parts
send and ask through one outbox. UIs read
`snapshot()` whenever `updates()` says it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from audio import Playback
from conversation.calls import FunctionCalls
from conversation.feed import ChangeFeed, Snapshot
from conversation.gate import GiveUp, Request, ResponseGate
from conversation.link import ConnectionState, LinkEvent, ServiceLink, SessionEnded, SessionStarted
from conversation.notices import Notice, NoticeKind
from conversation.outbox import Outbox
from conversation.service_events import ServiceEvents
from conversation.tool_runner import CallStatus
from conversation.transcript import Item, Transcript
from conversation.turns import Turn, Turns
from conversation.updates import ToolUpdates
from conversation.usage import TurnKind, meter_for
from conversation.voice import VoiceChannel
from realtime import dialect
from settings import RealtimeSettings, missing_settings
from tools import Toolbox, default_toolbox

log = logging.getLogger(__name__)

__all__ = ["ConnectionState", "Conversation", "Snapshot", "Turn"]


class Conversation:
    def __init__(self, settings: RealtimeSettings, tools: Toolbox | None = None, debug: bool = False) -> None:
        tools = tools or default_toolbox()
        self.settings = settings
        self.transcript = Transcript()
        self.turns = Turns()
        self.feed = ChangeFeed()
        self.gate = ResponseGate()
        self.link = ServiceLink(settings, self.feed.changed, self.gate.wait_quiet, debug)
        self.outbox = Outbox(self.link, self.turns, self.gate)
        self.calls = FunctionCalls(tools, self.transcript, self.turns, self.outbox, self.feed.changed)
        self.tools = self.calls.runner
        self.tool_updates = ToolUpdates(self.tools, self.outbox, lambda: self.gate.quiet and self.link.up,
                                        tools.update_after, settings.voice.instructions)
        self._tool_schemas = tools.schemas()
        self.voice = VoiceChannel(self.transcript, self.outbox)
        self.usage = meter_for(settings)
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.last_activity = time.monotonic()
        self.events = ServiceEvents(self.transcript, self.turns, self.gate, self.calls, self.voice, self.usage,
                                    self.outbox, self.link, self.feed)

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        missing = missing_settings(self.settings)
        if missing:
            self.link.give_up(ConnectionState.NOT_CONFIGURED, Notice(NoticeKind.NOT_CONFIGURED, names=tuple(missing)))
            return
        self._tasks = [
            asyncio.create_task(self._follow_link(), name="realtime link"),
            asyncio.create_task(self._follow_gate(), name="response gate"),
            asyncio.create_task(self.tool_updates.run(), name="tool updates"),
        ]

    async def close(self) -> None:
        """End the conversation: cancel running tools and tasks, close the connection."""
        if self._closed:
            return
        self._closed = True
        await self.calls.close()
        # The gate stops before the link closes: while the close awaits, a queued request's send would fail
        # and the gate would retry it at once, forever, without yielding (a reset with a request waiting hung).
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()
        self.turns.close()
        self.feed.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self.link.up

    @property
    def gave_up(self) -> bool:
        return self.link.gave_up

    @property
    def state(self) -> ConnectionState:
        return self.link.state

    @property
    def notice(self) -> Notice | None:
        return self.link.notice

    @property
    def voice_attached(self) -> bool:
        """Someone hears the answers: only then are responses generated as audio."""
        return self.voice.attached

    @voice_attached.setter
    def voice_attached(self, attached: bool) -> None:
        self.voice.attached = attached

    @property
    def playback(self) -> Playback:
        return self.voice.playback

    @property
    def interruptions(self) -> int:
        return self.voice.interruptions

    async def wait_connected(self, timeout: float) -> bool:
        return await self.link.wait_up(timeout)

    # ---- the service session: what the link yields ---------------------------------------------

    async def _follow_link(self) -> None:
        async with contextlib.aclosing(self.link.events()) as events:  # closed with the task: the link cleans up
            async for event in events:
                await self._on_link_event(event)

    async def _on_link_event(self, event: LinkEvent) -> None:
        if isinstance(event, SessionStarted):
            try:
                await self._configure()
            except (ConnectionError, OSError) as exc:  # it dropped while being set up
                log.info("a new service session dropped while being set up: %s", exc)
                await self.link.drop()
            except Exception:  # a session we could not set up is dropped and made again, as before a drop
                log.warning("setting up a new service session failed", exc_info=True)
                await self.link.drop()
        elif isinstance(event, SessionEnded):
            self.events.session_ended()
        else:
            await self.events.handle(event)

    async def _configure(self) -> None:
        """A new service session is blank: configure it first, then restore the conversation."""
        d = self.settings.dialect
        await self.link.send(dialect.session_update(self.settings.voice, self._tool_schemas, d,
                                                    self.settings.history_tokens))
        for item in self.transcript.replay(d, self.settings.replay_items):
            await self.link.send(dialect.create_item(item))
        await self.voice.send_held()
        self.gate.connected()

    # ---- what the UI and the audio handler call ----------------------------------------------

    async def send_text(self, text: str) -> Turn:
        """Add a typed message and ask for its own answer; the returned turn tracks everything it caused."""
        self.last_activity = time.monotonic()
        turn = self.turns.open()
        self.usage.turn_started(turn.turn_id, TurnKind.TYPED)
        turn.message_id = f"msg_{uuid.uuid4().hex[:20]}"
        self.transcript.add(Item(turn.message_id, "message", "user", text, sent=False))
        self.feed.changed()
        if self.gave_up or self._closed:
            self.turns.given_up({turn.turn_id})
            return turn
        # The message goes to the service just before its response is asked for, so each message
        # is answered on its own, in order, even when several arrive while a response is active.
        self.outbox.ask({turn.turn_id}, separate=True)
        return turn

    async def append_audio(self, pcm: np.ndarray) -> None:
        """Forward 24 kHz PCM16 from the microphone (dropped while disconnected: it would be stale)."""
        self.last_activity = time.monotonic()
        await self.voice.microphone(pcm, self.link.up, self.link.rotating)

    def turn_text(self, turn: Turn) -> str:
        texts = [item.text for i in turn.item_ids if (item := self.transcript.get(i)) and item.text]
        return "\n".join(texts)

    def snapshot(self) -> Snapshot:
        calls = sorted(self.tools.calls.values(), key=lambda c: c.started_at, reverse=True)
        return Snapshot(self.transcript.messages(), calls, self.link.state, self.link.notice)

    def usage_summary(self, detail: bool = True) -> dict[str, Any]:
        """Tokens, estimated cost and latency medians so far (tool durations from the runner's calls);
        `detail` adds the rows per response and per turn."""
        ran = [(c.name, c.elapsed()) for c in self.tools.calls.values()
               if c.finished_at is not None and c.status != CallStatus.CANCELLED]
        return self.usage.summary(ran, detail)

    async def updates(self) -> AsyncIterator[Snapshot]:
        """Snapshots whenever something changed (coalesced); ticks each second while tools run."""
        async for _ in self.feed.changes(lambda: 1.0 if self.tools.running else None):
            yield self.snapshot()

    # ---- the gate's decisions -------------------------------------------------------------------

    async def _follow_gate(self) -> None:
        async with contextlib.aclosing(self.gate.decisions()) as decisions:
            async for decision in decisions:
                if isinstance(decision, GiveUp):
                    self._give_up(decision.request)
                    continue
                try:
                    await self._send_request(decision)
                except (ConnectionError, OSError) as exc:  # the connection dropped: it waits for the next one
                    log.info("response.create not sent: %s", exc)
                    self.gate.unsent(decision)
                except Exception:  # not the connection: a fresh session, as after a drop, and the request again
                    log.warning("sending a response request failed", exc_info=True)
                    self.gate.unsent(decision)
                    await self.link.drop()

    async def _send_request(self, request: Request) -> None:
        for turn in self.turns.each(request.causes):
            item = self.transcript.get(turn.message_id) if turn.message_id else None
            if item is not None and not item.sent:
                self.transcript.move_to_end(item.item_id)  # the service's order is the order sent
                await self.link.send(dialect.create_item({"id": item.item_id, **dialect.user_text_item(item.text)}))
                item.sent = True
        tool_choice = None if request.tools_allowed else "none"
        await self.link.send(dialect.response_create(request.request_id, tool_choice, self.voice_attached,
                                                     self.settings.dialect, request.instructions))

    def _give_up(self, request: Request) -> None:
        self.turns.given_up(request.causes)
        self.link.notice = Notice(NoticeKind.NO_ANSWER)
        self.feed.changed()

