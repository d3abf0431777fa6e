"""One conversation with a Realtime service, shared by voice and text, independent of the UI.

It owns the transcript, the turns, the response gate, the function calls and the assistant's
audio playback; its link keeps a service session under it. Two loops drive it: what the link
yields (typed service events, sessions starting and ending) and what the gate decides (a response
to ask for now, or one given up). Its parts send and ask through one outbox. UIs read
`snapshot()` whenever `updates()` says it changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np

from audio import Playback
from conversation.calls import FunctionCalls
from conversation.feed import ChangeFeed, Snapshot
from conversation.gate import GiveUp, Request, ResponseGate
from conversation.link import ConnectionState, ServiceLink, SessionEnded, SessionStarted
from conversation.notices import Notice, NoticeKind
from conversation.outbox import Outbox
from conversation.tool_runner import CallStatus
from conversation.transcript import Item, Transcript
from conversation.turns import Turn, Turns
from conversation.updates import ToolUpdates
from conversation.usage import TurnKind, meter_for
from conversation.voice import VoiceChannel
from realtime import dialect
from realtime import events as ev
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
        self._handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            ev.SpeechStarted: self._on_speech_started,
            ev.SpeechStopped: self._on_speech_stopped,
            ev.IdleTimeout: self._on_idle_timeout,
            ev.ItemAdded: self._on_item_added,
            ev.UserTranscript: self._on_user_transcript,
            ev.ResponseCreated: self._on_response_created,
            ev.OutputItemAdded: self._on_output_item_added,
            ev.AnswerAudio: self._on_audio_delta,
            ev.AnswerAudioDone: self._on_audio_done,
            ev.AnswerText: self._on_text_delta,
            ev.OutputItemDone: self._on_output_item_done,
            ev.ResponseDone: self._on_response_done,
            ev.ServiceError: self._on_error,
        }

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
        async for event in self.link.events():
            if isinstance(event, SessionStarted):
                try:
                    await self._configure()
                except (ConnectionError, OSError) as exc:  # it dropped while being set up
                    log.info("a new service session dropped while being set up: %s", exc)
                    await self.link.drop()
            elif isinstance(event, SessionEnded):
                self._dropped()
            else:
                await self.dispatch(event)

    async def _configure(self) -> None:
        """A new service session is blank: configure it first, then restore the conversation."""
        d = self.settings.dialect
        await self.link.send(dialect.session_update(self.settings.voice, self._tool_schemas, d,
                                                    self.settings.history_tokens))
        for item in self.transcript.replay(d, self.settings.replay_items):
            await self.link.send(dialect.create_item(item))
        await self.voice.send_held()
        self.gate.connected()

    def _dropped(self) -> None:
        """The service session ended: a response in progress there is lost, so its turns are settled
        with what had arrived or asked again (their messages are in the replayed history)."""
        self.calls.connection_lost()  # a lost response's calls are told after the replay
        lost = self.gate.disconnected()
        if lost:
            items = self.turns.items_of(lost)
            cut = self.transcript.unfinished(items, self.calls.known)
            again = self.turns.response_lost(lost, len(cut) < len(items), cut)
            if again:  # nothing of the answer stands: it is asked again, first, and comes whole
                for item_id in cut:
                    self.transcript.remove(item_id)
                if cut and self.voice.attached:  # its audio so far will be said again from the start
                    self.voice.playback.interrupt()
                self.outbox.ask(again, separate=True, first=True)
                self.feed.changed()
        # The answer audio already received keeps playing: a move to a fresh session must not cut it off.

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
        async for decision in self.gate.decisions():
            if isinstance(decision, GiveUp):
                self._give_up(decision.request)
                continue
            try:
                await self._send_request(decision)
            except Exception as exc:  # the connection dropped: the request waits for the next one
                log.info("response.create not sent: %s", exc)
                self.gate.unsent(decision)

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

    # ---- server events -----------------------------------------------------------------------

    async def dispatch(self, event: ev.ServerEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        try:
            await handler(event)
        except Exception:  # one event we fail to handle must not end the conversation
            log.exception("failed to handle %s", type(event).__name__)

    async def _on_speech_started(self, _event: ev.SpeechStarted) -> None:
        self.gate.on_speech_started()
        if await self.voice.barge_in():
            self.feed.changed()

    async def _on_speech_stopped(self, event: ev.SpeechStopped) -> None:
        self.gate.on_speech_stopped()
        self.usage.turn_started(event.item_id or f"speech_{uuid.uuid4().hex[:12]}", TurnKind.VOICE)

    async def _on_idle_timeout(self, event: ev.IdleTimeout) -> None:
        """Server VAD's idle timeout: the service commits the silence as a user item and answers it itself,
        checking in on the user (SDK: input_audio_buffer_timeout_triggered.py). That silence is no message
        of the user's, and the gate waits for the service's answer as after a spoken turn."""
        self.transcript.silence(event.item_id)
        self.gate.on_speech_stopped()

    async def _on_item_added(self, event: ev.ItemAdded) -> None:
        if self.transcript.item_added(event.item, event.previous_item_id):
            self.feed.changed()

    async def _on_user_transcript(self, event: ev.UserTranscript) -> None:
        if not event.failed:
            if self.transcript.heard(event.item_id, event.text):
                self.feed.changed()
        elif self.transcript.not_heard(event.item_id):
            if event.reason:  # e.g. the offline model could not be had
                self.link.notice = Notice(NoticeKind.NOT_HEARD, event.reason)
            self.feed.changed()

    async def _on_response_created(self, event: ev.ResponseCreated) -> None:
        causes = self.gate.on_response_created(event.response_id, event.request_id)
        self.turns.response_started(event.response_id, causes, self.gate.waiting_causes())

    async def _on_output_item_added(self, event: ev.OutputItemAdded) -> None:
        self.turns.item_added(event.response_id, event.item.id)
        if event.item.type == "message":
            item = Item(event.item.id, "message", "assistant", phase=event.item.phase)
            self.transcript.add(item).streaming = True

    async def _on_audio_delta(self, event: ev.AnswerAudio) -> None:
        self.usage.first_output_of(TurnKind.VOICE)
        self.voice.answer_audio(event.item_id, event.pcm)

    async def _on_audio_done(self, event: ev.AnswerAudioDone) -> None:
        self.voice.answer_audio_done(event.item_id)

    async def _on_text_delta(self, event: ev.AnswerText) -> None:
        for turn in self.turns.of_response(event.response_id):
            self.usage.first_output(turn.turn_id)
        if self.transcript.answer_grew(event.item_id, event.delta):
            self.feed.changed()

    async def _on_output_item_done(self, event: ev.OutputItemDone) -> None:
        if event.item.type == "message":
            self.transcript.answer_done(event.item)
        elif event.item.type == "function_call":
            await self.calls.on_item_done(event.item, event.response_id)

    async def _on_response_done(self, event: ev.ResponseDone) -> None:
        response_id = event.response_id
        # Calls of a cancelled response may never get output_item.done: close each with an output.
        for item in event.output:
            if item.type == "function_call" and not self.calls.known(item.call_id):
                await self.calls.on_item_done(replace(item, status=item.status or "incomplete"), response_id)
        self.calls.response_done(response_id)  # before its turns settle: a follow-up keeps them open
        self.usage.on_response_done(response_id, event.usage)
        self.gate.on_response_done(response_id)
        self.turns.response_done(response_id)
        self.feed.changed()

    async def _on_error(self, event: ev.ServiceError) -> None:
        if event.code == "conversation_already_has_active_response":
            self.gate.on_active_response_error()
            return
        log.warning("realtime error %s: %s", event.code, event.message)
        if event.code not in ("response_cancel_not_active",) and "truncat" not in event.message.lower():
            self.link.notice = Notice(NoticeKind.SERVICE_ERROR, event.message or event.code)
            self.feed.changed()
