"""One service-side Realtime session: the protocol state machine of the local engine.

It behaves like the service where apps go wrong: one active response at a time, truncation
checked against the audio that exists, errors for invalid events, server VAD, transcription
events, and a blank session per connection. What it *says* comes from a pluggable Assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from audio import decode_pcm16, pcm_ms
from offline.session_options import check, idle_timeout_seconds, silence_ms
from offline.streaming import Assistant, Call, ResponseContext, Say, Voice, new_id, stream_response
from offline.usage import TokenBiller
from offline.wire import GA_ONLY, Dialect, Event, input_setting, wire_name

__all__ = ["Assistant", "Call", "EngineConnection", "Event", "ResponseContext", "Say", "SpeechDetector",
           "Transcriber", "TranscriptionFailed", "Voice", "parse_json"]

# Audio kept before speech starts beyond the prefix padding: the detector decides a frame or two late.
PRE_SPEECH_SLACK_MS = 100


class SpeechDetector(Protocol):
    """Voice activity detection: where speech starts and stops (server VAD's input; "turn" is a conversation's)."""

    def feed(self, pcm: np.ndarray) -> list[tuple[str, int]]: ...
    def reset(self) -> None: ...


Transcriber = Callable[[np.ndarray], Awaitable[str | None]]


class TranscriptionFailed(Exception):
    """Raised by a Transcriber; its message (Japanese) says why, e.g. the model could not be loaded."""


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


@dataclass
class EngineConnection:
    """State of one connection; `emit` takes a GA-named event and sends it in this connection's dialect."""

    dialect: Dialect
    emit_raw: Callable[[Event], Awaitable[None]]
    assistant: Assistant
    voice: Voice
    detector: SpeechDetector | None
    transcriber: Transcriber | None = None
    audio_chunk_ms: int = 100
    speed: float = 4.0  # how much faster than real time audio is streamed (the service is faster too)
    echo_metadata: bool = True  # response.create metadata echoed on the response (current API versions do)
    created_delay: float = 0.0  # seconds before response.created (a real service's round trip)
    biller: TokenBiller = field(default_factory=TokenBiller)
    config: Event = field(default_factory=dict)
    items: list[Event] = field(default_factory=list)
    buffer: list[np.ndarray] = field(default_factory=list)
    buffer_ms: int = 0
    speech_start_ms: int | None = None
    active: asyncio.Task | None = None
    transcribing: asyncio.Task | None = None  # the latest utterance's recognition (transcripts go out in order)
    audio_ms: dict[str, int] = field(default_factory=dict)
    input_ms: int = 0  # all input audio so far (the offsets in VAD and timeout events)
    idle_from_ms: int | None = None  # server VAD's idle timeout counts silence from here (None: not armed)
    response_from: int = 0  # where the active response's items begin in `items`

    async def emit(self, event: Event) -> None:
        if self.dialect == "preview" and event["type"] in GA_ONLY:
            return
        await self.emit_raw({"event_id": new_id("event"), **event, "type": wire_name(event["type"], self.dialect)})

    async def error(self, code: str, message: str, event_id: str | None = None, param: str | None = None) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message, "param": param,
                 "event_id": event_id}
        await self.emit({"type": "error", "error": error})

    async def start(self) -> None:
        await self.emit({"type": "session.created", "session": {"id": new_id("sess"), "object": "realtime.session"}})

    async def handle(self, event: Event) -> None:
        handler = getattr(self, "on_" + event.get("type", "").replace(".", "_"), None)
        if handler is None:
            await self.error("invalid_event", f"Unknown event type: {event.get('type')!r}", event.get("event_id"))
            return
        try:
            await handler(event)
        except ProtocolError as exc:
            await self.error(exc.code, str(exc), event.get("event_id"), exc.param)

    async def close(self) -> None:
        if self.transcribing is not None:
            self.transcribing.cancel()
        if self.active is not None:
            self.active.cancel()
            await asyncio.gather(self.active, return_exceptions=True)

    # ---- session configuration -------------------------------------------------------------

    async def on_session_update(self, event: Event) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            raise ProtocolError("invalid_value", "session must be an object", "session")
        if problem := check(session, self.dialect):
            raise ProtocolError(*problem)
        self.config.update(session)
        vad = self._input("turn_detection") or {}
        # The detector follows the session's VAD (semantic VAD approximated by the pause it waits for).
        for key, value in (("silence_duration_ms", silence_ms(vad)),
                           ("prefix_padding_ms", vad.get("prefix_padding_ms"))):
            if isinstance(value, int) and hasattr(self.detector, key):
                setattr(self.detector, key, value)
        self.idle_from_ms = None if self.active else self.input_ms
        await self.emit({"type": "session.updated", "session": self.config})

    def _input(self, key: Any) -> Any:
        return input_setting(self.config, self.dialect, key)

    # ---- input audio -----------------------------------------------------------------------

    async def on_input_audio_buffer_append(self, event: Event) -> None:
        try:
            pcm = decode_pcm16(event["audio"])
        except (KeyError, ValueError) as exc:
            raise ProtocolError("invalid_value", f"audio must be base64 PCM16: {exc}", "audio") from None
        vad = self._input("turn_detection")
        if vad and self.detector is not None and self.speech_start_ms is None:
            # Before speech starts only the prefix padding can end up in the turn: in silence keep no more.
            self._keep_last_ms(int(vad.get("prefix_padding_ms", 300)) + PRE_SPEECH_SLACK_MS)
        self.buffer.append(pcm)
        self.buffer_ms += pcm_ms(pcm.size)
        self.input_ms += pcm_ms(pcm.size)
        if not vad or self.detector is None:
            return
        for kind, at_ms in self.detector.feed(pcm):
            if kind == "speech_started":
                self.speech_start_ms, self.idle_from_ms = at_ms, None
                await self.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms,
                                 "item_id": new_id("item")})
                if vad.get("interrupt_response", True) and self.active:
                    self.active.cancel()
            elif kind == "speech_stopped":
                await self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms})
                await self._commit(respond=vad.get("create_response", True))
        idle = idle_timeout_seconds(vad)
        if (idle is not None and self.idle_from_ms is not None and self.speech_start_ms is None and not self.active
                and self.input_ms - self.idle_from_ms >= idle * 1000):
            await self._timeout_triggered()

    async def _timeout_triggered(self) -> None:
        """As documented for `idle_timeout_ms`: the event, then the silent audio committed as a user item,
        then a response of the service's own (the model prompts the user to go on)."""
        item_id = new_id("item")
        await self.emit({"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": self.idle_from_ms,
                         "audio_end_ms": self.input_ms, "item_id": item_id})
        self.idle_from_ms = None
        await self._commit(respond=True, item_id=item_id)

    def _keep_last_ms(self, keep_ms: int) -> None:
        while self.buffer and self.buffer_ms - pcm_ms(self.buffer[0].size) >= keep_ms:
            self.buffer_ms -= pcm_ms(self.buffer.pop(0).size)

    async def on_input_audio_buffer_commit(self, event: Event) -> None:
        if self.buffer_ms < 100:
            raise ProtocolError("input_audio_buffer_commit_empty",
                                f"buffer too small: expected at least 100ms, got {self.buffer_ms}ms")
        await self._commit(respond=False)

    async def on_input_audio_buffer_clear(self, event: Event) -> None:
        self.buffer, self.buffer_ms = [], 0
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _commit(self, respond: bool, item_id: str | None = None) -> None:
        pcm = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int16)
        self.buffer, self.buffer_ms, self.speech_start_ms = [], 0, None
        if self.detector is not None:
            self.detector.reset()
        item = {"id": item_id or new_id("item"), "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.audio_ms[item["id"]] = pcm_ms(pcm.size)  # what the model hears of it (billed as input audio)
        previous = self.items[-1]["id"] if self.items else None
        await self.emit({"type": "input_audio_buffer.committed", "item_id": item["id"], "previous_item_id": previous})
        await self.add_item(item)
        self.transcribing = asyncio.ensure_future(self._finish_turn(item, pcm, respond, self.transcribing))

    async def _finish_turn(self, item: Event, pcm: np.ndarray, respond: bool, previous: asyncio.Task | None) -> None:
        """Recognition takes a second or so: it runs beside the audio still arriving, one utterance at a time."""
        if previous is not None:
            try:
                await asyncio.wait([previous])
            except asyncio.CancelledError:  # closing cancels the newest turn: the whole chain goes with it
                previous.cancel()
                raise
        if self._input("transcription"):
            await self._transcribe(item, pcm)
        # Someone already speaking again commits another turn, and that turn's response answers both.
        if respond and not self.active and self.speech_start_ms is None:
            self._start_response({})

    async def _transcribe(self, item: Event, pcm: np.ndarray) -> None:
        reason = "no speech recognition model"
        try:
            text = await self.transcriber(pcm) if self.transcriber else None
        except TranscriptionFailed as exc:
            text, reason = None, str(exc)
        if text is None:
            await self.emit({"type": "conversation.item.input_audio_transcription.failed", "item_id": item["id"],
                             "content_index": 0, "error": {"type": "transcription_error", "message": reason}})
            return
        item["content"][0]["transcript"] = text
        await self.emit({"type": "conversation.item.input_audio_transcription.completed", "item_id": item["id"],
                         "content_index": 0, "transcript": text})

    # ---- conversation items ----------------------------------------------------------------

    async def add_item(self, item: Event, previous: str | None = None) -> None:
        previous = previous or (self.items[-1]["id"] if self.items else None)
        self.items.append(item)
        await self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        if item.get("status") == "completed":  # a streamed item is done when its response says so
            await self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def on_conversation_item_create(self, event: Event) -> None:
        item = dict(event.get("item") or {})
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            raise ProtocolError("invalid_value", f"Invalid item type: {kind!r}", "item.type")
        if any(existing["id"] == item.get("id") for existing in self.items):
            raise ProtocolError("item_already_exists", f"Item with id {item.get('id')!r} already exists.", "item.id")
        if kind == "function_call_output":
            calls = {i.get("call_id") for i in self.items if i["type"] == "function_call"}
            if item.get("call_id") not in calls:
                raise ProtocolError("invalid_value", f"No tool call found for call_id {item.get('call_id')!r}.",
                                    "item.call_id")
            if not isinstance(item.get("output"), str):
                raise ProtocolError("invalid_type", "item.output must be a string", "item.output")
        if kind == "message" and item.get("role") not in ("user", "assistant", "system"):
            raise ProtocolError("invalid_value", "Invalid role", "item.role")
        item.setdefault("id", new_id("item"))
        item["status"] = "completed"
        await self.add_item(item, event.get("previous_item_id"))

    async def on_conversation_item_truncate(self, event: Event) -> None:
        item = next((i for i in self.items if i["id"] == event.get("item_id")), None)
        if item is None or item.get("role") != "assistant":
            raise ProtocolError("invalid_value", f"Item {event.get('item_id')!r} is not an assistant message.",
                                "item_id")
        have, want = self.audio_ms.get(item["id"], 0), int(event.get("audio_end_ms", -1))
        if want < 0 or want > have:
            raise ProtocolError("invalid_value", f"Audio content of {have}ms is already shorter than {want}ms",
                                "audio_end_ms")
        self.audio_ms[item["id"]] = want
        await self.emit({"type": "conversation.item.truncated", "item_id": item["id"], "content_index": 0,
                         "audio_end_ms": want})

    async def on_conversation_item_delete(self, event: Event) -> None:
        before = len(self.items)
        self.items = [i for i in self.items if i["id"] != event.get("item_id")]
        if len(self.items) == before:
            raise ProtocolError("invalid_value", f"Item {event.get('item_id')!r} does not exist.", "item_id")
        await self.emit({"type": "conversation.item.deleted", "item_id": event.get("item_id")})

    # ---- responses -------------------------------------------------------------------------

    async def on_response_create(self, event: Event) -> None:
        if self.active:
            raise ProtocolError("conversation_already_has_active_response",
                                "Conversation already has an active response in progress.")
        options = event.get("response") or {}
        # Each dialect rejects the other's response fields, as the service does.
        foreign = ("modalities", "voice", "output_audio_format") if self.dialect == "ga" else ("output_modalities",
                                                                                              "audio")
        for key in foreign:
            if key in options:
                raise ProtocolError("unknown_parameter", f"Unknown parameter: 'response.{key}'.", f"response.{key}")
        if self.dialect == "ga" and len(options.get("output_modalities") or []) > 1:
            raise ProtocolError("invalid_value", "output_modalities must be either ['audio'] or ['text'].",
                                "response.output_modalities")
        self._start_response(options)

    async def on_response_cancel(self, event: Event) -> None:
        if not self.active:
            raise ProtocolError("response_cancel_not_active", "Cancellation failed: no active response found")
        self.active.cancel()

    def _start_response(self, options: Event) -> None:
        self.idle_from_ms, self.response_from = None, len(self.items)
        self.active = asyncio.ensure_future(stream_response(self, options))

    def response_finished(self) -> None:
        self.active = None
        # The idle timeout counts from when the answer's audio has finished playing (it streams faster).
        played = sum(self.audio_ms.get(item["id"], 0) for item in self.items[self.response_from:])
        self.idle_from_ms = self.input_ms + played

    async def transcribed(self) -> None:
        """Wait for the transcripts of the utterances committed so far (the model hears them as it answers)."""
        if self.transcribing is not None:
            await asyncio.wait([self.transcribing])

    def context(self, options: Event) -> ResponseContext:
        return ResponseContext(
            items=list(self.items),
            tools=options.get("tools", self.config.get("tools", [])),
            tool_choice=options.get("tool_choice", self.config.get("tool_choice", "auto")),
            instructions=options.get("instructions", self.config.get("instructions", "")),
        )


def parse_json(text: str | bytes) -> Event | None:
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    return None

