"""Streams one response of the local engine as the service does: items, deltas, done events, usage.

Audio goes out in chunks a little faster than real time with the transcript interleaved, so
playback, barge-in and truncation behave as they do against the real service. A response asked
for text only streams text events and no audio.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from audio import SAMPLE_RATE, encode_pcm16, pcm_ms
from offline.usage import TokenBiller, Tokens, header_of, output_tokens, usage_of
from offline.wire import AUDIO_PART, TEXT_PART, Dialect, Event, output_modalities

TEXT_CHARS_PER_SECOND = 100  # how fast text is "generated" at speed 1
TEXT_CHUNK_CHARS = 8


@dataclass(frozen=True)
class Say:
    text: str
    sentences: AsyncIterator[str] | None = None  # an answer still being written (a language model's), said as it comes
    # gpt-realtime-2 labels its assistant messages: "commentary" (a preamble said before a tool call) or
    # "final_answer"; None for models that do not (the item then has no `phase`).
    phase: str | None = None


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str
    stream_seconds: float = 0.0  # how long the arguments take to stream (the service's take a while)


@dataclass
class ResponseContext:
    """What an Assistant sees when asked to respond."""

    items: list[Event]
    tools: list[Event]
    tool_choice: str
    instructions: str

    @property
    def last(self) -> Event | None:
        return self.items[-1] if self.items else None


def text_of(item: Event) -> str:
    """What a conversation item says: typed text, or the transcript of what was spoken."""
    return "".join(p.get("text") or p.get("transcript") or "" for p in item.get("content") or [])


def is_voice(item: Event) -> bool:
    return any(p.get("type") == "input_audio" for p in item.get("content") or [])


class Assistant(Protocol):
    async def respond(self, context: ResponseContext) -> list[Say | Call]: ...


class Voice(Protocol):
    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        """(sentence, 24 kHz PCM16) pairs that together say `text`."""
        ...


class ResponseHost(Protocol):
    """What a streamed response needs of its connection (the engine's EngineConnection)."""

    dialect: Dialect
    assistant: Assistant
    voice: Voice
    config: Event
    items: list[Event]
    audio_ms: dict[str, int]
    audio_chunk_ms: int
    speed: float
    echo_metadata: bool
    created_delay: float
    biller: TokenBiller
    emit: Callable[[Event], Awaitable[None]]
    add_item: Callable[[Event], Awaitable[None]]

    def context(self, options: Event) -> ResponseContext: ...
    def response_finished(self) -> None: ...
    async def transcribed(self) -> None: ...


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


async def stream_response(host: ResponseHost, options: Event) -> None:
    modalities = output_modalities(options, host.config, host.dialect)
    response: Event = {"id": new_id("resp"), "object": "realtime.response", "status": "in_progress",
                       "status_details": None, "output": [], "usage": None,
                       ("output_modalities" if host.dialect == "ga" else "modalities"): modalities}
    if host.echo_metadata:  # old preview versions and some compatible servers leave it out
        response["metadata"] = options.get("metadata")
    context = host.context(options)
    truncation = host.config.get("truncation") if host.dialect == "ga" else None
    billed = host.biller.bill_input(header_of(context.instructions, context.tools), host.items, host.audio_ms,
                                   truncation)
    produced = Tokens()
    if host.created_delay:  # the response is active (a second create is refused) but not yet announced
        try:
            await asyncio.sleep(host.created_delay)
        except asyncio.CancelledError:
            host.response_finished()
            raise
    await host.emit({"type": "response.created", "response": dict(response)})
    current: Event | None = None
    status = "completed"
    try:
        await host.transcribed()  # what was just said is part of what gets answered
        index = -1
        async for output in _outputs(host.assistant, context):
            index += 1
            if isinstance(output, Call) and context.tool_choice == "none":
                continue
            current = {"id": new_id("item"), "status": "in_progress", "object": "realtime.item"}
            await _begin_item(host, response, index, current, output)
            if isinstance(output, Call):
                produced += await _stream_call(host, response["id"], index, current, output)
            elif "audio" in modalities:
                produced += await _stream_speech(host, response["id"], index, current, output)
            else:
                text = output.text if output.sentences is None else "".join([s async for s in output.sentences])
                produced += await _stream_text(host, response["id"], index, current, text)
            current["status"] = "completed"
            await host.emit({"type": "response.output_item.done", "response_id": response["id"],
                             "output_index": index, "item": current})
            await host.emit({"type": "conversation.item.done", "item": current})
            current = None
    except asyncio.CancelledError:
        status = "cancelled"
        if current is not None:
            current["status"] = "incomplete"
            produced += _partial(current, host.audio_ms.get(current["id"], 0))
            await host.emit({"type": "response.output_item.done", "response_id": response["id"],
                             "output_index": len(response["output"]) - 1, "item": current})
            await host.emit({"type": "conversation.item.done", "item": current})
    finally:
        host.response_finished()  # before response.done, so a create sent on receipt is accepted
        response.update(status=status, status_details={"type": status} if status != "completed" else None,
                        usage=usage_of(billed, produced))
        await host.emit({"type": "response.done", "response": response})


def _partial(item: Event, audio_ms: int) -> Tokens:
    """What an interrupted item had produced (billed like the service bills a cancelled response)."""
    text = "".join(p.get("transcript") or p.get("text") or "" for p in item.get("content") or [])
    return output_tokens(text + (item.get("arguments") or ""), audio_ms)


async def _begin_item(host: ResponseHost, response: Event, index: int, item: Event, output: Say | Call) -> None:
    if isinstance(output, Say):
        item.update(type="message", role="assistant", content=[])
        if output.phase:
            item["phase"] = output.phase
    else:
        item.update(type="function_call", name=output.name, call_id=new_id("call"), arguments="")
    response["output"].append(item)
    await host.emit({"type": "response.output_item.added", "response_id": response["id"], "output_index": index,
                     "item": item})
    await host.add_item(item)


async def _outputs(assistant: Assistant, context: ResponseContext) -> AsyncIterator[Say | Call]:
    """An assistant that streams (a language model) hands over each output as it comes; others all at once."""
    stream = getattr(assistant, "stream", None)
    if stream is None:
        for output in await assistant.respond(context):
            yield output
        return
    async for output in stream(context):
        yield output


async def _spoken(voice: Voice, say: Say) -> AsyncIterator[tuple[str, np.ndarray]]:
    """(sentence, PCM) pairs of `say`, synthesized a sentence at a time (a streamed answer's as they arrive)."""
    texts = say.sentences if say.sentences is not None else _single(say.text)
    async for text in texts:
        sentences = iter(voice.synthesize(text))
        while (spoken := await asyncio.to_thread(next, sentences, None)) is not None:
            yield spoken


async def _single(text: str) -> AsyncIterator[str]:
    yield text


async def _stream_speech(host: ResponseHost, response_id: str, index: int, item: Event, say: Say) -> Tokens:
    base = {"response_id": response_id, "item_id": item["id"], "output_index": index, "content_index": 0}
    part = {"type": AUDIO_PART[host.dialect], "transcript": ""}
    item["content"] = [part]
    await host.emit({"type": "response.content_part.added", **base, "part": dict(part)})
    chunk = SAMPLE_RATE * host.audio_chunk_ms // 1000
    host.audio_ms[item["id"]] = 0
    # Synthesize a sentence at a time so the first audio goes out after the first sentence.
    async for sentence, pcm in _spoken(host.voice, say):
        sent = 0
        for start in range(0, pcm.size, chunk):
            piece = pcm[start : start + chunk]
            await host.emit({"type": "response.output_audio.delta", **base, "delta": encode_pcm16(piece)})
            host.audio_ms[item["id"]] += pcm_ms(piece.size)
            # Transcript deltas keep pace with the audio, as the service's do.
            heard = round(len(sentence) * (start + piece.size) / pcm.size)
            if heard > sent:
                await host.emit({"type": "response.output_audio_transcript.delta", **base,
                                 "delta": sentence[sent:heard]})
                part["transcript"] += sentence[sent:heard]
                sent = heard
            await asyncio.sleep(piece.size / SAMPLE_RATE / host.speed)
    text = say.text if say.sentences is None else part["transcript"]
    part["transcript"] = text
    await host.emit({"type": "response.output_audio.done", **base})
    await host.emit({"type": "response.output_audio_transcript.done", **base, "transcript": text})
    await host.emit({"type": "response.content_part.done", **base, "part": dict(part)})
    return output_tokens(text, host.audio_ms[item["id"]])


async def _stream_text(host: ResponseHost, response_id: str, index: int, item: Event, text: str) -> Tokens:
    base = {"response_id": response_id, "item_id": item["id"], "output_index": index, "content_index": 0}
    part = {"type": TEXT_PART[host.dialect], "text": ""}
    item["content"] = [part]
    await host.emit({"type": "response.content_part.added", **base, "part": dict(part)})
    for start in range(0, len(text), TEXT_CHUNK_CHARS):
        piece = text[start : start + TEXT_CHUNK_CHARS]
        await host.emit({"type": "response.output_text.delta", **base, "delta": piece})
        part["text"] += piece
        await asyncio.sleep(len(piece) / TEXT_CHARS_PER_SECOND / host.speed)
    await host.emit({"type": "response.output_text.done", **base, "text": text})
    await host.emit({"type": "response.content_part.done", **base, "part": dict(part)})
    return output_tokens(text, 0)


async def _stream_call(host: ResponseHost, response_id: str, index: int, item: Event, call: Call) -> Tokens:
    base = {"response_id": response_id, "item_id": item["id"], "output_index": index, "call_id": item["call_id"]}
    arguments = call.arguments
    step = max(1, len(arguments) // 3)
    for start in range(0, len(arguments), step):
        await host.emit({"type": "response.function_call_arguments.delta", **base,
                         "delta": arguments[start : start + step]})
        await asyncio.sleep(call.stream_seconds * step / max(1, len(arguments)))
    item["arguments"] = arguments
    done = {"type": "response.function_call_arguments.done", **base, "arguments": arguments}
    if host.dialect == "ga":  # the preview dialect's done event has no name
        done["name"] = call.name
    await host.emit(done)
    return output_tokens(call.name + arguments, 0)
