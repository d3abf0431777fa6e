"""One conversation with a Realtime service, shared by voice and text, independent of the UI.

It owns the transcript, the turns, the response gate, the function calls and the assistant's
audio playback; its link keeps a service session under it. UIs read `snapshot()` whenever
`updates()` says it changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from audio import Playback
from conversation.calls import FunctionCalls
from conversation.feed import ChangeFeed, Snapshot
from conversation.gate import Request, ResponseGate
from conversation.link import ConnectionState, ServiceLink
from conversation.notices import Notice, NoticeKind
from conversation.tool_runner import CallStatus
from conversation.transcript import Item, Transcript
from conversation.turns import Turn, Turns
from conversation.updates import ToolUpdates
from conversation.usage import TurnKind, meter_for
from conversation.voice import VoiceChannel
from realtime import dialect
from realtime.dialect import Event
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
        self.gate = ResponseGate(self._send_request, self._give_up)
        self.link = ServiceLink(settings, self, self.feed.changed, self.gate.wait_quiet, debug)
        self.calls = FunctionCalls(tools, self.transcript, self.turns, self, self.feed.changed)
        self.tools = self.calls.runner
        self.tool_updates = ToolUpdates(self.tools, self.gate, tools.update_after, settings.voice.instructions,
                                        lambda: self.link.up)
        self._tool_schemas = tools.schemas()
        self.voice = VoiceChannel(self.transcript, self.link.send)
        self.usage = meter_for(settings)
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.last_activity = time.monotonic()
        self._handlers = {
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.timeout_triggered": self._on_idle_timeout,
            "conversation.item.added": self._on_item_added,
            "conversation.item.input_audio_transcription.completed": self._on_user_transcript,
            "conversation.item.input_audio_transcription.failed": self._on_user_transcript_failed,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item_added,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_text_delta,
            "response.output_text.delta": self._on_text_delta,
            "response.output_item.done": self._on_output_item_done,
            "response.done": self._on_response_done,
            "error": self._on_error,
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
            asyncio.create_task(self.link.run(), name="realtime link"),
            asyncio.create_task(self.gate.run(), name="response gate"),
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

    async def configure(self, fresh: bool) -> None:
        """A new service session is blank: configure it first, then restore the conversation."""
        d = self.settings.dialect
        await self.link.send(dialect.session_update(self.settings.voice, self._tool_schemas, d,
                                                    self.settings.history_tokens))
        for item in self.transcript.replay(d, self.settings.replay_items):
            await self.link.send(dialect.create_item(item))
        await self.voice.send_held()
        self.gate.connected()

    def dropped(self) -> None:
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
                self.gate.request(again, separate=True, first=True)
                self.feed.changed()
        # The answer audio already received keeps playing: a move to a fresh session must not cut it off.

    async def send(self, event: Event) -> None:
        await self.link.send(event)

    def ask(self, turn_ids: set[str], *, tools_allowed: bool) -> None:
        """Ask the gate for a response on behalf of these turns (they are open until it is done)."""
        self.turns.requested(turn_ids)
        self.gate.request(turn_ids, tools_allowed=tools_allowed)

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
        self.gate.request({turn.turn_id}, separate=True)
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

    # ---- the gate's requests -------------------------------------------------------------------

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

    async def dispatch(self, event: Event) -> None:
        handler = self._handlers.get(event.get("type", ""))
        if handler is None:
            return
        try:
            await handler(event)
        except Exception:  # one malformed event must not end the conversation
            log.exception("failed to handle %s", event.get("type"))

    async def _on_speech_started(self, event: Event) -> None:
        self.gate.on_speech_started()
        if await self.voice.barge_in():
            self.feed.changed()

    async def _on_speech_stopped(self, event: Event) -> None:
        self.gate.on_speech_stopped()
        self.usage.turn_started(event.get("item_id") or f"speech_{uuid.uuid4().hex[:12]}", TurnKind.VOICE)

    async def _on_idle_timeout(self, event: Event) -> None:
        """Server VAD's idle timeout: the service commits the silence as a user item and answers it itself,
        checking in on the user (SDK: input_audio_buffer_timeout_triggered.py). That silence is no message
        of the user's, and the gate waits for the service's answer as after a spoken turn."""
        self.transcript.silence(event["item_id"])
        self.gate.on_speech_stopped()

    async def _on_item_added(self, event: Event) -> None:
        if self.transcript.item_added(event["item"], event.get("previous_item_id")):
            self.feed.changed()

    async def _on_user_transcript(self, event: Event) -> None:
        if self.transcript.heard(event["item_id"], event.get("transcript") or ""):
            self.feed.changed()

    async def _on_user_transcript_failed(self, event: Event) -> None:
        if self.transcript.not_heard(event["item_id"]):
            if reason := (event.get("error") or {}).get("message"):  # e.g. the offline model could not be had
                self.link.notice = Notice(NoticeKind.NOT_HEARD, reason)
            self.feed.changed()

    async def _on_response_created(self, event: Event) -> None:
        response = event["response"]
        causes = self.gate.on_response_created(response["id"], response.get("metadata"))
        self.turns.response_started(response["id"], causes, self.gate.waiting_causes())

    async def _on_output_item_added(self, event: Event) -> None:
        raw = event["item"]
        self.turns.item_added(event.get("response_id", ""), raw.get("id", ""))
        if raw.get("type") == "message":
            item = Item(raw.get("id", ""), "message", "assistant", phase=raw.get("phase") or "")
            self.transcript.add(item).streaming = True

    async def _on_audio_delta(self, event: Event) -> None:
        self.usage.first_output_of(TurnKind.VOICE)
        self.voice.answer_audio(event["item_id"], event["delta"])

    async def _on_audio_done(self, event: Event) -> None:
        self.voice.answer_audio_done(event["item_id"])

    async def _on_text_delta(self, event: Event) -> None:
        for turn in self.turns.of_response(event.get("response_id", "")):
            self.usage.first_output(turn.turn_id)
        if self.transcript.answer_grew(event["item_id"], event.get("delta", "")):
            self.feed.changed()

    async def _on_output_item_done(self, event: Event) -> None:
        raw = event["item"]
        if raw.get("type") == "message":
            self.transcript.answer_done(raw)
        elif raw.get("type") == "function_call":
            await self.calls.on_item_done(raw, event.get("response_id", ""))

    async def _on_response_done(self, event: Event) -> None:
        response = event["response"]
        response_id = response["id"]
        # Calls of a cancelled response may never get output_item.done: close each with an output.
        for raw in response.get("output") or []:
            if raw.get("type") == "function_call" and not self.calls.known(raw.get("call_id", "")):
                await self.calls.on_item_done({**raw, "status": raw.get("status") or "incomplete"}, response_id)
        self.calls.response_done(response_id)  # before its turns settle: a follow-up keeps them open
        self.usage.on_response_done(response_id, response.get("usage"))
        self.gate.on_response_done(response_id)
        self.turns.response_done(response_id)
        self.feed.changed()

    async def _on_error(self, event: Event) -> None:
        error = event.get("error") or {}
        code = error.get("code") or ""
        if code == "conversation_already_has_active_response":
            self.gate.on_active_response_error()
            return
        log.warning("realtime error %s: %s", code, error.get("message"))
        if code not in ("response_cancel_not_active",) and "truncat" not in (error.get("message") or "").lower():
            self.link.notice = Notice(NoticeKind.SERVICE_ERROR, error.get("message") or code)
            self.feed.changed()
