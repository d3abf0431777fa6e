"""The server events the conversation handles, as typed values parsed once at the edge.

Field names follow the SDK's models (openai.types.realtime: `ResponseAudioDeltaEvent`,
`ConversationItemAdded`, `ResponseDoneEvent`, ...; the preview dialect's events carry the same
payloads under older names, renamed by dialect.py first). Audio is decoded here. Events the
conversation does not handle parse to None; an event without what it must carry raises
`MalformedEvent`, so the connection drops it with one log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio import decode_pcm16

Raw = dict[str, Any]


class MalformedEvent(ValueError):
    """A received event lacks what it must carry (the message says what)."""


@dataclass(frozen=True)
class ServerItem:
    """A conversation item as the service describes it (message, function call, or other)."""

    id: str
    type: str
    role: str = ""
    status: str = ""
    text: str = ""  # typed text, or the transcript of audio, of every content part
    voice: bool = False  # the user's message was spoken (an `input_audio` part)
    phase: str = ""  # gpt-realtime-2: "commentary" (a preamble before a call) or "final_answer"
    call_id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class _OfItem:
    item_id: str = ""


class SpeechStarted(_OfItem):
    """The user started speaking (the service's VAD)."""


class SpeechStopped(_OfItem):
    """The user stopped speaking: the service commits the turn as `item_id`."""


class IdleTimeout(_OfItem):
    """Server VAD's idle timeout: the service commits the silence as `item_id` and answers it itself."""


class AnswerAudioDone(_OfItem):
    """An answer's audio is complete."""


@dataclass(frozen=True)
class _ItemOfResponse:
    response_id: str
    item: ServerItem


class OutputItemAdded(_ItemOfResponse):
    """A response started an output item (an answer or a function call)."""


class OutputItemDone(_ItemOfResponse):
    """A response's output item is complete (its final text, or a call's arguments)."""


@dataclass(frozen=True)
class ItemAdded:
    """The service added an item to the conversation (after `previous_item_id`, when given)."""

    item: ServerItem
    previous_item_id: str | None = None


@dataclass(frozen=True)
class UserTranscript:
    """The transcript of the user's spoken turn `item_id`, or why there is none (`failed`, `reason`)."""

    item_id: str
    text: str = ""
    failed: bool = False
    reason: str = ""  # the service's words, when it failed


@dataclass(frozen=True)
class ResponseCreated:
    """A response started (ours, when it echoes our request id, or the service's own)."""

    response_id: str
    request_id: str = ""  # our tag in the response's metadata, when the service echoes it


@dataclass(frozen=True)
class AnswerAudio:
    """A piece of an answer's audio, decoded."""

    item_id: str
    pcm: np.ndarray = field(repr=False, compare=False)  # 24 kHz PCM16


@dataclass(frozen=True)
class AnswerText:
    """A piece of an answer's text (typed output, or the transcript of its audio)."""

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class ResponseDone:
    """A response ended (`status`: completed, cancelled, incomplete, failed) with its items and usage."""

    response_id: str
    status: str = ""
    output: tuple[ServerItem, ...] = ()
    usage: Raw | None = None  # as reported; the usage meter reads it defensively (services vary)


@dataclass(frozen=True)
class ServiceError:
    """An `error` event: the service refused something we sent, or failed."""

    code: str = ""
    message: str = ""


ServerEvent = (SpeechStarted | SpeechStopped | IdleTimeout | ItemAdded | UserTranscript
               | ResponseCreated | OutputItemAdded | AnswerAudio | AnswerAudioDone | AnswerText | OutputItemDone
               | ResponseDone | ServiceError)


def _text(raw: Raw, key: str, kind: str, *, required: bool = True) -> str:
    value = raw.get(key)
    if isinstance(value, str) and value:
        return value
    if required:
        raise MalformedEvent(f"{kind} without {key}")
    return value if isinstance(value, str) else ""


def _object(raw: Raw, key: str, kind: str) -> Raw:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise MalformedEvent(f"{kind} without {key}")
    return value


def content_text(content: Any) -> str:
    """The text of an item's content parts (typed text, or the transcript of audio)."""
    if not isinstance(content, list):
        return ""
    return "".join(part.get("text") or part.get("transcript") or "" for part in content if isinstance(part, dict))


def server_item(raw: Any) -> ServerItem:
    if not isinstance(raw, dict):
        raise MalformedEvent("an item that is not an object")
    content = raw.get("content")
    parts = content if isinstance(content, list) else []
    return ServerItem(
        id=str(raw.get("id") or ""),
        type=str(raw.get("type") or ""),
        role=str(raw.get("role") or ""),
        status=str(raw.get("status") or ""),
        text=content_text(parts),
        voice=any(isinstance(part, dict) and part.get("type") == "input_audio" for part in parts),
        phase=str(raw.get("phase") or ""),
        call_id=str(raw.get("call_id") or ""),
        name=str(raw.get("name") or ""),
        arguments=str(raw.get("arguments") or ""),
    )


def _response(raw: Raw, kind: str) -> tuple[Raw, str]:
    response = _object(raw, "response", kind)
    return response, _text(response, "id", f"{kind}.response")


def _response_created(raw: Raw, kind: str) -> ResponseCreated:
    response, response_id = _response(raw, kind)
    metadata = response.get("metadata")
    request_id = metadata.get("request_id") if isinstance(metadata, dict) else None
    return ResponseCreated(response_id, request_id if isinstance(request_id, str) else "")


def _response_done(raw: Raw, kind: str) -> ResponseDone:
    response, response_id = _response(raw, kind)
    output = response.get("output")
    items = tuple(server_item(i) for i in output if isinstance(i, dict)) if isinstance(output, list) else ()
    usage = response.get("usage")
    return ResponseDone(response_id, str(response.get("status") or ""), items,
                        usage if isinstance(usage, dict) else None)


def _message_of(raw: Raw, key: str) -> str:
    """`raw[key]["message"]`, when there is one (an error's words)."""
    value = raw.get(key)
    return str(value.get("message") or "") if isinstance(value, dict) else ""


def _error(raw: Raw, _kind: str) -> ServiceError:
    error = raw.get("error")
    return ServiceError(str(error.get("code") or "") if isinstance(error, dict) else "", _message_of(raw, "error"))


def _answer_audio(raw: Raw, kind: str) -> AnswerAudio:
    item_id, delta = _text(raw, "item_id", kind), _text(raw, "delta", kind)
    try:
        return AnswerAudio(item_id, decode_pcm16(delta, strict=True))
    except ValueError:  # binascii.Error, or an odd number of bytes
        raise MalformedEvent(f"{kind} with a delta that is not base64 PCM16 audio") from None


def _answer_text(raw: Raw, kind: str) -> AnswerText:
    return AnswerText(_text(raw, "response_id", kind, required=False), _text(raw, "item_id", kind),
                      _text(raw, "delta", kind, required=False))


def _output_item(event: type[_ItemOfResponse]) -> Callable[[Raw, str], ServerEvent]:
    return lambda raw, kind: event(str(raw.get("response_id") or ""), server_item(_object(raw, "item", kind)))


def _optional_id(raw: Raw) -> str:
    return str(raw.get("item_id") or "")


_PARSERS: dict[str, Callable[[Raw, str], ServerEvent]] = {
    "input_audio_buffer.speech_started": lambda raw, _: SpeechStarted(_optional_id(raw)),
    "input_audio_buffer.speech_stopped": lambda raw, _: SpeechStopped(_optional_id(raw)),
    "input_audio_buffer.timeout_triggered": lambda raw, kind: IdleTimeout(_text(raw, "item_id", kind)),
    "conversation.item.added": lambda raw, kind: ItemAdded(
        server_item(_object(raw, "item", kind)), _text(raw, "previous_item_id", kind, required=False) or None),
    "conversation.item.input_audio_transcription.completed": lambda raw, kind: UserTranscript(
        _text(raw, "item_id", kind), _text(raw, "transcript", kind, required=False)),
    "conversation.item.input_audio_transcription.failed": lambda raw, kind: UserTranscript(
        _text(raw, "item_id", kind), failed=True, reason=_message_of(raw, "error")),
    "response.created": _response_created,
    "response.output_item.added": _output_item(OutputItemAdded),
    "response.output_audio.delta": _answer_audio,
    "response.output_audio.done": lambda raw, kind: AnswerAudioDone(_text(raw, "item_id", kind)),
    "response.output_audio_transcript.delta": _answer_text,
    "response.output_text.delta": _answer_text,
    "response.output_item.done": _output_item(OutputItemDone),
    "response.done": _response_done,
    "error": _error,
}


def parse(raw: Raw) -> ServerEvent | None:
    """A received event (GA names) as a typed value; None for events the conversation does not handle."""
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise MalformedEvent("no type")
    parser = _PARSERS.get(kind)
    return parser(raw, kind) if parser else None
