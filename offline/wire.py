"""The service's wire vocabulary, written from the API reference (not from the client's own table).

The local server must be able to catch a client that uses a wrong event name, so it spells both
dialects here literally; it imports nothing of the client's protocol code.
"""

from __future__ import annotations

from typing import Any, Literal

# Which of the service's two dialects: the configuration's name for it (settings holds no protocol tables, so
# sharing it keeps one meaning for `Dialect` without the server learning the client's event names).
from settings import Dialect

Event = dict[str, Any]

# Server events whose preview name differs from the GA one (GA → preview), as documented.
PREVIEW_NAMES: dict[str, str] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
# Server events that exist only in GA (the preview item lifecycle has no "done").
GA_ONLY = frozenset({"conversation.item.done"})

# Content part types of an assistant message per dialect.
AUDIO_PART: dict[Dialect, str] = {"ga": "output_audio", "preview": "audio"}
TEXT_PART: dict[Dialect, str] = {"ga": "output_text", "preview": "text"}


def wire_name(ga_name: str, dialect: Dialect) -> str:
    """The name this server sends for a server event, in `dialect`."""
    return PREVIEW_NAMES.get(ga_name, ga_name) if dialect == "preview" else ga_name


def output_modalities(options: Event, session: Event, dialect: Dialect) -> list[str]:
    """What a response produces: its own override, else the session's (GA `output_modalities`, preview `modalities`)."""
    key = "output_modalities" if dialect == "ga" else "modalities"
    chosen = options.get(key) or session.get(key) or (["audio"] if dialect == "ga" else ["text", "audio"])
    return [m for m in chosen if m in ("text", "audio")] or ["audio"]


def input_setting(session: Event, dialect: Dialect, key: Literal["turn_detection", "transcription"]) -> Any:
    """An input-audio setting from the session config in either dialect's shape."""
    if dialect == "ga":
        return (session.get("audio") or {}).get("input", {}).get(key)
    return session.get({"turn_detection": "turn_detection", "transcription": "input_audio_transcription"}[key])
