"""What each typed service event does to the conversation's parts, in the order the link yields them.

The parts (transcript, turns, gate, calls, voice, usage) only change state here and return what
to do; anything for the service goes through the outbox.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from conversation.calls import FunctionCalls
from conversation.feed import ChangeFeed
from conversation.gate import ResponseGate
from conversation.link import ServiceLink
from conversation.notices import Notice, NoticeKind
from conversation.outbox import Outbox
from conversation.transcript import Item, Transcript
from conversation.turns import Turns
from conversation.usage import TurnKind, UsageMeter
from conversation.voice import VoiceChannel
from realtime import events as ev

log = logging.getLogger(__name__)


class ServiceEvents:
    def __init__(self, transcript: Transcript, turns: Turns, gate: ResponseGate, calls: FunctionCalls,
                 voice: VoiceChannel, usage: UsageMeter, outbox: Outbox, link: ServiceLink, feed: ChangeFeed) -> None:
        self.transcript, self.turns, self.gate, self.calls = transcript, turns, gate, calls
        self.voice, self.usage, self.outbox, self.link, self.feed = voice, usage, outbox, link, feed
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

    def session_ended(self) -> None:
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

    async def handle(self, event: ev.ServerEvent) -> None:
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
