"""The GA session's newer settings (turn detection, eagerness, noise reduction, reasoning, idle timeout): each
reaches `session.update` as the SDK's types document it and is absent when unset; the local server refuses
what the service would and approximates semantic VAD."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from conftest import ToneVoice, settings_for
from openai.types.beta.realtime.session_update_event import Session as PreviewSession
from openai.types.realtime import RealtimeSessionCreateRequest
from openai.types.realtime.realtime_audio_config_input import RealtimeAudioConfigInput
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad
from support.service import InstrumentedServer
from test_stand_in import sdk_connection, stand_in, until

from audio import SAMPLE_RATE, encode_pcm16
from conversation.conversation import Conversation
from settings import IDLE_CHECK_IN, VoiceSettings, load_settings

ALL_SET = {"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_VAD_EAGERNESS": "low",
           "REALTIME_NOISE_REDUCTION": "far_field", "REALTIME_REASONING_EFFORT": "low"}


def voice_from(env: dict[str, str]) -> VoiceSettings:
    return load_settings(env).realtime.voice


async def first_session_update(server: InstrumentedServer, flavour: str, voice: VoiceSettings) -> dict:
    conversation = Conversation(replace(settings_for(server, flavour), voice=voice))
    conversation.start()
    try:
        assert await conversation.wait_connected(5), conversation.notice
        record = server.connections[-1]
        await server.wait_for(lambda: record.sent_of_type("session.updated") or record.sent_of_type("error"))
        assert record.sent_of_type("error") == [], "the server refused the session.update"
        update = record.received[0]
        assert update["type"] == "session.update"
        return update["session"]
    finally:
        await conversation.close()


def ga_parts(session: dict) -> tuple[dict, dict]:
    """(audio.input, its turn_detection), after checking every key is one the SDK's types document."""
    RealtimeSessionCreateRequest.model_validate(session)  # each value is of its documented type
    assert set(session) <= set(RealtimeSessionCreateRequest.model_fields)
    audio_in = session["audio"]["input"]
    assert set(audio_in) <= set(RealtimeAudioConfigInput.model_fields)
    vad = audio_in["turn_detection"]
    assert set(vad) <= set((SemanticVad if vad["type"] == "semantic_vad" else ServerVad).model_fields)
    return audio_in, vad


# ---- settings → session.update ------------------------------------------------------------------------


async def test_unset_settings_send_none_of_the_new_fields(server):
    audio_in, vad = ga_parts(await first_session_update(server, "openai", voice_from({})))
    session = server.connections[0].received[0]["session"]
    assert "reasoning" not in session and "noise_reduction" not in audio_in
    assert vad["type"] == "server_vad" and "idle_timeout_ms" not in vad and "eagerness" not in vad


@pytest.mark.parametrize(("env", "where", "expected"), [
    ({"REALTIME_TURN_DETECTION": "semantic_vad"}, "turn_detection",
     {"type": "semantic_vad", "create_response": True, "interrupt_response": True}),
    ({"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_VAD_EAGERNESS": "HIGH"}, "turn_detection",
     {"type": "semantic_vad", "eagerness": "high", "create_response": True, "interrupt_response": True}),
    ({"REALTIME_NOISE_REDUCTION": "near_field"}, "noise_reduction", {"type": "near_field"}),
    ({"REALTIME_NOISE_REDUCTION": "far_field"}, "noise_reduction", {"type": "far_field"}),
    ({"REALTIME_NOISE_REDUCTION": "off"}, "noise_reduction", None),  # documented: null turns it off
    ({"REALTIME_REASONING_EFFORT": "minimal"}, "reasoning", {"effort": "minimal"}),
    ({"REALTIME_IDLE_TIMEOUT_SECONDS": "8"}, "idle_timeout_ms", 8000),
])
async def test_each_setting_reaches_the_ga_session_update_as_documented(server, env, where, expected):
    session = await first_session_update(server, "azure-ga", voice_from(env))
    audio_in, vad = ga_parts(session)
    found = {"turn_detection": lambda: vad, "noise_reduction": lambda: audio_in["noise_reduction"],
             "reasoning": lambda: session["reasoning"], "idle_timeout_ms": lambda: vad["idle_timeout_ms"]}[where]()
    assert found == expected
    others = {"noise_reduction": "noise_reduction" in audio_in, "reasoning": "reasoning" in session,
              "idle_timeout_ms": "idle_timeout_ms" in vad, "turn_detection": vad["type"] == "semantic_vad"}
    assert [name for name, present in others.items() if present and name != where] == []
    if vad["type"] == "semantic_vad":  # semantic VAD takes none of server VAD's silence tuning
        assert not {"threshold", "silence_duration_ms", "prefix_padding_ms"} & set(vad)


async def test_the_idle_timeout_adds_how_to_check_in_to_the_instructions(server):
    plain = await first_session_update(server, "openai", voice_from({"REALTIME_INSTRUCTIONS": "短く答えて。"}))
    idle = await first_session_update(server, "openai", voice_from({"REALTIME_INSTRUCTIONS": "短く答えて。",
                                                                    "REALTIME_IDLE_TIMEOUT_SECONDS": "20"}))
    assert plain["instructions"] == "短く答えて。"
    assert idle["instructions"] == "短く答えて。" + IDLE_CHECK_IN


async def test_the_preview_dialect_gets_only_what_it_supports(server):
    voice = voice_from({**ALL_SET, "REALTIME_TURN_DETECTION": "server_vad", "REALTIME_VAD_EAGERNESS": "",
                        "REALTIME_IDLE_TIMEOUT_SECONDS": "5"})
    session = await first_session_update(server, "azure-preview", voice)
    PreviewSession.model_validate(session)
    assert session["input_audio_noise_reduction"] == {"type": "far_field"}
    assert "reasoning" not in session and "idle_timeout_ms" not in session["turn_detection"]
    semantic = await first_session_update(server, "azure-preview", voice_from(ALL_SET))
    assert semantic["turn_detection"] == {"type": "semantic_vad", "eagerness": "low", "create_response": True,
                                          "interrupt_response": True}


@pytest.mark.parametrize(("name", "value", "field", "default"), [
    ("REALTIME_TURN_DETECTION", "semantic", "turn_detection", "server_vad"),
    ("REALTIME_NOISE_REDUCTION", "near", "noise_reduction", ""),
    ("REALTIME_REASONING_EFFORT", "max", "reasoning_effort", ""),
    ("REALTIME_IDLE_TIMEOUT_SECONDS", "soon", "idle_timeout_ms", 0),
])
def test_a_bad_value_is_one_warning_and_the_default(name, value, field, default, caplog):
    with caplog.at_level(logging.WARNING, logger="settings"):
        voice = voice_from({name: value})
    assert getattr(voice, field) == default
    assert len(caplog.records) == 1 and name in caplog.records[0].getMessage()


def test_eagerness_without_semantic_vad_and_idle_timeout_with_it_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="settings"):
        server_vad = voice_from({"REALTIME_VAD_EAGERNESS": "low"})
        semantic = voice_from({"REALTIME_TURN_DETECTION": "semantic_vad", "REALTIME_IDLE_TIMEOUT_SECONDS": "5"})
    assert server_vad.vad_eagerness == "" and semantic.idle_timeout_ms == 0
    assert len(caplog.records) == 2


def test_choosing_the_azure_preview_dialect_logs_once_that_it_was_retired(caplog):
    azure = {"AZURE_OPENAI_ENDPOINT": "https://example.invalid", "AZURE_OPENAI_API_KEY": "k",
             "AZURE_OPENAI_DEPLOYMENT": "d"}
    with caplog.at_level(logging.INFO, logger="settings"):
        preview = load_settings({**azure, "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    assert preview.realtime.dialect == "preview"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "2026-04-30" in line and "GA" in line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="settings"):
        assert load_settings(azure).realtime.dialect == "ga"
    assert caplog.records == []


# ---- the local server, spoken to with literal events through the SDK's own connection --------------------


@pytest.mark.parametrize(("dialect", "session", "param"), [
    ("ga", {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}}},
     "session.audio.input.turn_detection.threshold"),
    ("ga", {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "fast"}}}},
     "session.audio.input.turn_detection.eagerness"),
    ("ga", {"audio": {"input": {"noise_reduction": {"type": "headset"}}}}, "session.audio.input.noise_reduction.type"),
    ("ga", {"reasoning": {"effort": "max"}}, "session.reasoning.effort"),
    ("preview", {"reasoning": {"effort": "low"}}, "session.reasoning"),
    ("preview", {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}},
     "session.turn_detection.idle_timeout_ms"),
])
async def test_the_local_server_refuses_what_the_service_documents_as_invalid(dialect, session, param):
    async with stand_in() as server, sdk_connection(server, dialect) as connection:
        await connection.send({"type": "session.update",
                               "session": {**session, **({"type": "realtime"} if dialect == "ga" else {})}})
        error = (await until(connection, "error"))["error"]
    assert error["param"] == param and error["code"] in ("unknown_parameter", "invalid_value")


@pytest.mark.parametrize(("eagerness", "turns"), [("high", 2), ("low", 1)])
async def test_semantic_vad_waits_longer_through_a_pause_when_less_eager(eagerness, turns):
    """Approximated by the pause that ends a turn: a 0.6 s pause mid-sentence ends an eager turn, not a patient one."""
    async with stand_in() as server, sdk_connection(server, "ga") as connection:
        await connection.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}}}}})
        await until(connection, "session.updated")
        word, pause = ToneVoice.tone("x" * 8), np.zeros(SAMPLE_RATE * 6 // 10, np.int16)
        audio = np.concatenate([word, pause, word, np.zeros(SAMPLE_RATE * 2, np.int16)])
        for chunk in np.array_split(audio, len(audio) // 480):
            await connection.send({"type": "input_audio_buffer.append", "audio": encode_pcm16(chunk)})
        # A typed item after the audio: the server handles events in order, so every turn decision precedes it.
        await connection.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "sentinel"}]}})
        seen: list[dict] = []
        while (await until(connection, "conversation.item.added", seen))["item"]["role"] != "user" or \
                seen[-1]["item"]["content"][0]["type"] != "input_text":
            pass
    assert len([e for e in seen if e["type"] == "input_audio_buffer.speech_stopped"]) == turns
