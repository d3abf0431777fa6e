"""Streams one response of the local engine as the service does: items, deltas, done events.

Audio goes out in chunks a little faster than real time with the transcript interleaved, so
playback, barge-in and truncation behave as they do against the real service.
"""

from __future__ import annotations

import asyncio
import uuid

from audio import SAMPLE_RATE, encode_pcm16, pcm_ms
from offline.engine import Call, EngineConnection, Event, Say


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _audio_part(dialect: str, transcript: str | None) -> Event:
    return {"type": "output_audio" if dialect == "ga" else "audio", "transcript": transcript}


async def stream_response(session: EngineConnection, options: Event) -> None:
    response: Event = {"id": _id("resp"), "object": "realtime.response", "status": "in_progress",
                       "metadata": options.get("metadata"), "output": []}
    await session.emit({"type": "response.created", "response": dict(response)})
    current: Event | None = None
    status = "completed"
    try:
        outputs = await session.assistant.respond(session.context(options))
        for index, output in enumerate(outputs):
            if isinstance(output, Call) and session.context(options).tool_choice == "none":
                continue
            current = {"id": _id("item"), "status": "in_progress", "object": "realtime.item"}
            await _begin_item(session, response, index, current, output)
            if isinstance(output, Say):
                await _stream_speech(session, response["id"], index, current, output.text)
            else:
                await _stream_call(session, response["id"], index, current, output)
            current["status"] = "completed"
            await session.emit({"type": "response.output_item.done", "response_id": response["id"],
                                "output_index": index, "item": current})
            if session.dialect == "ga":
                await session.emit({"type": "conversation.item.done", "item": current})
            current = None
    except asyncio.CancelledError:
        status = "cancelled"
        if current is not None:
            current["status"] = "incomplete"
            await session.emit({"type": "response.output_item.done", "response_id": response["id"],
                                "output_index": len(response["output"]) - 1, "item": current})
    finally:
        session.active = None  # cleared before response.done, so a create sent on receipt is accepted
        response.update(status=status, status_details={"type": status} if status != "completed" else None)
        await session.emit({"type": "response.done", "response": response})


async def _begin_item(session: EngineConnection, response: Event, index: int, item: Event, output: Say | Call) -> None:
    if isinstance(output, Say):
        item.update(type="message", role="assistant", content=[])
    else:
        item.update(type="function_call", name=output.name, call_id=_id("call"), arguments="")
    response["output"].append(item)
    await session.emit({"type": "response.output_item.added", "response_id": response["id"], "output_index": index,
                        "item": item})
    await session._add_item(item)


async def _stream_speech(session: EngineConnection, response_id: str, index: int, item: Event, text: str) -> None:
    base = {"response_id": response_id, "item_id": item["id"], "output_index": index, "content_index": 0}
    part = _audio_part(session.dialect, "")
    item["content"] = [part]
    await session.emit({"type": "response.content_part.added", **base, "part": dict(part)})
    chunk = SAMPLE_RATE * session.audio_chunk_ms // 1000
    session.audio_ms[item["id"]] = 0
    # Synthesize a sentence at a time so the first audio goes out after the first sentence.
    sentences = iter(session.voice.synthesize(text))
    while (spoken := await asyncio.to_thread(next, sentences, None)) is not None:
        sentence, pcm = spoken
        sent = 0
        for start in range(0, pcm.size, chunk):
            piece = pcm[start : start + chunk]
            await session.emit({"type": "response.output_audio.delta", **base, "delta": encode_pcm16(piece)})
            session.audio_ms[item["id"]] += pcm_ms(piece.size)
            # Transcript deltas keep pace with the audio, as the service's do.
            heard = round(len(sentence) * (start + piece.size) / pcm.size)
            if heard > sent:
                await session.emit({"type": "response.output_audio_transcript.delta", **base,
                                    "delta": sentence[sent:heard]})
                sent = heard
            await asyncio.sleep(piece.size / SAMPLE_RATE / session.speed)
    part["transcript"] = text
    await session.emit({"type": "response.output_audio.done", **base})
    await session.emit({"type": "response.output_audio_transcript.done", **base, "transcript": text})
    await session.emit({"type": "response.content_part.done", **base, "part": dict(part)})


async def _stream_call(session: EngineConnection, response_id: str, index: int, item: Event, call: Call) -> None:
    base = {"response_id": response_id, "item_id": item["id"], "output_index": index, "call_id": item["call_id"]}
    arguments = call.arguments
    step = max(1, len(arguments) // 3)
    for start in range(0, len(arguments), step):
        await session.emit({"type": "response.function_call_arguments.delta", **base,
                            "delta": arguments[start : start + step]})
        await asyncio.sleep(call.stream_seconds * step / max(1, len(arguments)))
    item["arguments"] = arguments
    done = {"type": "response.function_call_arguments.done", **base, "arguments": arguments}
    if session.dialect == "ga":  # the preview dialect's done event has no name
        done["name"] = call.name
    await session.emit(done)

