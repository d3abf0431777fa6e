"""Voice over real WebRTC: an aiortc peer against the launched app and the local Realtime server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from apphost import open_voice, running_app
from conftest import ScriptedAssistant, ToneVoice, eventually
from webrtc_client import VoiceClient

from audio import rms
from offline.engine import Say

LONG_ANSWER = "これはとても長い答えです。" * 12  # ~9 s of audio from ToneVoice


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def app():
    assistant = ScriptedAssistant({r"": lambda m: [Say(LONG_ANSWER)]})
    with running_app("azure-ga", assistant) as running:
        yield running


async def test_voice_reaches_service_at_24khz_and_answer_comes_back(app):
    client, session = await open_voice(app)
    try:
        client.microphone.play(ToneVoice.tone("あいうえおかきくけこさしす"))  # ~0.8 s of 440 Hz
        record = app.server.connections[-1]
        await eventually(lambda: record.sent_of_type("input_audio_buffer.speech_stopped"), 10)
        heard = record.received_audio
        assert rms(heard) > 1000
        loud = heard[np.abs(heard) > 2000]
        assert loud.size > 0
        start = int(np.argmax(np.abs(heard) > 2000))
        # 440 Hz measured at 24 kHz proves the app sent 24 kHz PCM16 (a wrong rate shifts the peak).
        assert abs(dominant_frequency(heard[start : start + 12000], 24000) - 440) < 15
        await eventually(lambda: rms(client.received_audio()) > 500, 10)
        assert session.transcript.messages()[0] == {"role": "user", "content": "こんにちは"}
    finally:
        await client.close()
    await eventually(lambda: not session.voice_attached, 3)


async def test_barge_in_stops_playback_and_truncates_at_heard_ms(app):
    client, session = await open_voice(app)
    try:
        connection = app.server.connections[-1]  # this session's (it connected last)
        tone = ToneVoice.tone("あいうえおかきくけこ")
        client.microphone.play(tone)
        loop = asyncio.get_running_loop()
        await eventually(lambda: rms(client.received_audio(since=loop.time() - 0.3)) > 500, 10)
        await asyncio.sleep(1.0)  # about a second of the answer is heard
        client.microphone.play(tone)  # the user talks over it
        await eventually(lambda: len(connection.sent_of_type("input_audio_buffer.speech_started")) == 2, 5)
        interrupted_at = loop.time()
        truncate = (await eventually(lambda: connection.of_type("conversation.item.truncate"), 3))[0]
        item_ms = connection.session.audio_ms.get(truncate["item_id"])
        assert 700 <= truncate["audio_end_ms"] <= 2500, truncate
        assert item_ms == truncate["audio_end_ms"]  # the service accepted it (no error)
        assert not connection.sent_of_type("error")
        # While the user is still talking, nothing of the interrupted answer reaches the speaker.
        await asyncio.sleep(0.9)
        assert rms(client.received_audio(since=interrupted_at + 0.15, until=interrupted_at + 0.9)) < 50
        assert any("（中断）" in m["content"] for m in session.transcript.messages())
    finally:
        await client.close()


async def test_voice_session_limit_refuses_the_next_caller_with_a_message(monkeypatch):
    monkeypatch.setenv("MAX_VOICE_SESSIONS", "1")
    with running_app("azure-ga", ScriptedAssistant()) as app:
        first, _session = await open_voice(app)
        second = VoiceClient(app.url)
        third = VoiceClient(app.url)
        try:
            assert (await second.connect()).get("sdp")
            refusal = await eventually(lambda: next((m for m in second.messages if m.get("type") == "warning"),
                                                    None), 5)
            assert "上限（1）" in refusal["message"]
            assert app.registry.voice_sessions == 1
            answer = await third.connect()  # beyond fastrtc's hard limit: refused at the offer
            assert answer.get("status") == "failed"
            assert answer["meta"]["error"] == "concurrency_limit_reached"
        finally:
            for client in (first, second, third):
                await client.close()
