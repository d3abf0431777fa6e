"""A `session.update` as the service checks it, written from the documentation (not from the client's tables):
each dialect's shape, and the GA session's newer options (semantic turn detection, input noise reduction,
reasoning effort and server VAD's idle timeout).

Checked the way the service checks a `session.update`: a value outside the documented set, or a field
the chosen turn detection (or the dialect) does not have, is an error naming the parameter.
"""

from __future__ import annotations

from typing import Any

from offline.wire import Dialect, Event

# Documented values (API reference: session.audio.input.turn_detection, .noise_reduction, session.reasoning).
EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTION = ("near_field", "far_field")
REASONING_EFFORT = ("minimal", "low", "medium", "high", "xhigh")
# Fields of each turn detection type; semantic VAD has no silence or threshold tuning, and the preview
# session's turn detection has no idle timeout.
VAD_FIELDS: dict[str, set[str]] = {
    "server_vad": {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                   "interrupt_response", "idle_timeout_ms"},
    "semantic_vad": {"type", "eagerness", "create_response", "interrupt_response"},
}
# Semantic VAD ends a turn by meaning; this server approximates it by the pause it waits for, longer
# for a less eager setting (the service's own cap is 8 s / 4 s / 2 s for low / medium / high).
SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 900, "auto": 900, "high": 400}

Problem = tuple[str, str, str]  # (error code, message, param)


def _unknown(param: str) -> Problem:
    return "unknown_parameter", f"Unknown parameter: '{param}'.", param


def _invalid(param: str, value: Any, allowed: tuple[str, ...]) -> Problem:
    return ("invalid_value", f"Invalid value: {value!r}. Supported values are: "
            + ", ".join(repr(a) for a in allowed) + ".", param)


def check(session: Event, dialect: Dialect) -> Problem | None:
    """Why the service would refuse this `session.update` (None when it would not): each dialect refuses the
    other's shape, and the newer options are checked against their documented values."""
    if dialect == "ga":
        if session.get("type") != "realtime":
            return "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
        if legacy := next((k for k in ("modalities", "input_audio_format", "voice", "turn_detection")
                           if k in session), None):
            return _unknown(f"session.{legacy}")
        audio_in = (session.get("audio") or {}).get("input") or {}
        vad, vad_param = audio_in.get("turn_detection"), "session.audio.input.turn_detection"
        noise, noise_param = audio_in.get("noise_reduction", ...), "session.audio.input.noise_reduction"
        reasoning = session.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else reasoning
        if reasoning is not None and effort not in (*REASONING_EFFORT, None):
            return _invalid("session.reasoning.effort", effort, REASONING_EFFORT)
    else:
        if "audio" in session or "type" in session:
            return _unknown("session.audio")
        vad, vad_param = session.get("turn_detection"), "session.turn_detection"
        noise, noise_param = session.get("input_audio_noise_reduction", ...), "session.input_audio_noise_reduction"
        if "reasoning" in session:
            return _unknown("session.reasoning")
    if noise not in (..., None) and (not isinstance(noise, dict) or noise.get("type") not in NOISE_REDUCTION):
        return _invalid(f"{noise_param}.type", noise.get("type") if isinstance(noise, dict) else noise,
                        NOISE_REDUCTION)
    if not isinstance(vad, dict):
        return None
    kind = vad.get("type")
    if kind not in VAD_FIELDS:
        return _invalid(f"{vad_param}.type", kind, tuple(VAD_FIELDS))
    allowed = VAD_FIELDS[kind] - ({"idle_timeout_ms"} if dialect == "preview" else set())
    if extra := sorted(set(vad) - allowed):
        return _unknown(f"{vad_param}.{extra[0]}")
    if kind == "semantic_vad" and "eagerness" in vad and vad["eagerness"] not in EAGERNESS:
        return _invalid(f"{vad_param}.eagerness", vad["eagerness"], EAGERNESS)
    idle = vad.get("idle_timeout_ms")
    if idle is not None and (not isinstance(idle, int) or isinstance(idle, bool) or idle <= 0):
        return "invalid_value", "idle_timeout_ms must be a positive integer.", f"{vad_param}.idle_timeout_ms"
    return None


def silence_ms(vad: Event) -> int | None:
    """How long a pause ends the user's turn under this turn detection (None: leave the detector's)."""
    if vad.get("type") == "semantic_vad":
        return SEMANTIC_SILENCE_MS[vad.get("eagerness") or "auto"]
    value = vad.get("silence_duration_ms")
    return value if isinstance(value, int) else None


def idle_timeout_seconds(vad: Event | None) -> float | None:
    """Server VAD's idle timeout: after this much silence following the last answer, the service
    emits `input_audio_buffer.timeout_triggered`, commits the silent audio and responds."""
    if not vad or vad.get("type") != "server_vad" or not vad.get("idle_timeout_ms"):
        return None
    return vad["idle_timeout_ms"] / 1000
