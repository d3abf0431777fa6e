"""The two wire dialects of the Realtime API (GA and the older preview), translated at the edge.

Everything inside the app speaks GA event names; this module is the only place that knows
the preview names and the two shapes of `session.update`.
"""

from __future__ import annotations

from typing import Any

from settings import Dialect, VoiceSettings

Event = dict[str, Any]

# Server → client event names that differ; the rest are the same in both dialects.
PREVIEW_TO_GA: dict[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}

# Content part types of an assistant message, used when replaying history after a reconnect.
ASSISTANT_TEXT_PART = {"ga": "output_text", "preview": "text"}


def to_internal(event: Event, dialect: Dialect) -> Event:
    """A received event in GA vocabulary (renamed in place; payloads already agree)."""
    if dialect == "preview":
        event["type"] = PREVIEW_TO_GA.get(event.get("type", ""), event.get("type", ""))
    return event


def session_update(
    voice: VoiceSettings, tools: list[dict[str, Any]], dialect: Dialect, history_tokens: int = 0
) -> Event:
    """The `session.update` that configures audio, transcription, VAD, persona and tools; on GA with a
    history limit, the service drops the oldest items past it (keeping 80% so its cache survives)."""
    transcription = {"model": voice.transcription_model, "language": voice.transcription_language}
    vad = turn_detection(voice, dialect)
    if dialect == "preview":
        session: Event = {
            "modalities": ["text", "audio"],
            "instructions": voice.instructions,
            "voice": voice.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": vad,
        }
        if voice.noise_reduction:  # beta SessionUpdateEvent.session.input_audio_noise_reduction
            session["input_audio_noise_reduction"] = noise_reduction(voice)
    else:
        pcm = {"type": "audio/pcm", "rate": 24000}
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            # The service answers an idle timeout by itself, guided only by the session's instructions.
            "instructions": voice.instructions + (voice.idle_check_in if "idle_timeout_ms" in vad else ""),
            "audio": {
                "input": {"format": pcm, "transcription": transcription, "turn_detection": vad},
                "output": {"format": pcm, "voice": voice.voice},
            },
        }
        if voice.noise_reduction:  # RealtimeAudioConfigInput.noise_reduction
            session["audio"]["input"]["noise_reduction"] = noise_reduction(voice)
        if voice.reasoning_effort:  # RealtimeSessionCreateRequest.reasoning (RealtimeReasoning.effort)
            session["reasoning"] = {"effort": voice.reasoning_effort}
        if history_tokens:
            session["truncation"] = {"type": "retention_ratio", "retention_ratio": 0.8,
                                     "token_limits": {"post_instructions": history_tokens}}
    session["tools"] = tools
    session["tool_choice"] = "auto"
    return {"type": "session.update", "session": session}


def turn_detection(voice: VoiceSettings, dialect: Dialect) -> Event:
    """Server VAD (silence ends a turn) or semantic VAD (meaning does), as the SDK's
    realtime_audio_input_turn_detection.py types them: semantic VAD takes `eagerness` and none of server
    VAD's tuning; `idle_timeout_ms` is server VAD's and GA's only (the preview session has no such field)."""
    if voice.turn_detection == "semantic_vad":
        vad: Event = {"type": "semantic_vad", "create_response": True, "interrupt_response": True}
        if voice.vad_eagerness:
            vad["eagerness"] = voice.vad_eagerness
        return vad
    vad = {
        "type": "server_vad",
        "threshold": voice.vad_threshold,
        "prefix_padding_ms": voice.vad_prefix_padding_ms,
        "silence_duration_ms": voice.vad_silence_ms,
        "create_response": True,
        "interrupt_response": True,
    }
    if voice.idle_timeout_ms and dialect == "ga":
        vad["idle_timeout_ms"] = voice.idle_timeout_ms
    return vad


def noise_reduction(voice: VoiceSettings) -> Event | None:
    """`{"type": "near_field" | "far_field"}`, or null, which the service documents as "turned off"."""
    return None if voice.noise_reduction == "off" else {"type": voice.noise_reduction}


def user_text_item(text: str) -> Event:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant_text_item(text: str, dialect: Dialect) -> Event:
    return {"type": "message", "role": "assistant", "content": [{"type": ASSISTANT_TEXT_PART[dialect], "text": text}]}


def function_call_item(call_id: str, name: str, arguments: str) -> Event:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_output_item(call_id: str, output: str) -> Event:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def create_item(item: Event) -> Event:
    return {"type": "conversation.item.create", "item": item}


def response_create(request_id: str, tool_choice: str | None, audio: bool, dialect: Dialect,
                    instructions: str = "") -> Event:
    """A `response.create` tagged in metadata (so its `response.created` can be told from VAD's when
    the service echoes it); text-only when nobody is listening, since audio output costs far more."""
    response: Event = {"metadata": {"request_id": request_id}}
    if tool_choice:
        response["tool_choice"] = tool_choice
    if instructions:  # for this response only; the session's own instructions stay as they are
        response["instructions"] = instructions
    if not audio:
        response["modalities" if dialect == "preview" else "output_modalities"] = ["text"]
    return {"type": "response.create", "response": response}


def append_audio(base64_pcm16: str) -> Event:
    return {"type": "input_audio_buffer.append", "audio": base64_pcm16}


def truncate(item_id: str, audio_end_ms: int) -> Event:
    return {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": audio_end_ms}


def delete_item(item_id: str) -> Event:
    return {"type": "conversation.item.delete", "item_id": item_id}
