"""Voice over real WebRTC: an aiortc peer against the launched app and the local Realtime server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import ScriptedAssistant, ToneVoice, eventually
from support.apphost import open_voice, running_app
from support.webrtc_client import RATE, VoiceClient

from audio import SAMPLE_RATE, rms
from offline.engine import ResponseContext, Say
from web.chat import chatbot_messages

LOW_HZ, HIGH_HZ = 440.0, 880.0
LONG_ANSWER = "これはとても長い答えです。" * 12  # ~9 s of audio at 440 Hz
LATER_ANSWER = "高い声の二つ目の答えです。" * 4  # starts with 高: spoken at 880 Hz


class PitchVoice(ToneVoice):
    """ToneVoice, except that a text starting with 「高」 is spoken an octave higher: replies told apart by ear."""

    def synthesize(self, text: str) -> Iterator[tuple[str, np.ndarray]]:
        pitch = HIGH_HZ if text.startswith("高") else LOW_HZ
        samples = SAMPLE_RATE * min(10_000, max(200, 60 * len(text))) // 1000
        yield text, (np.sin(2 * np.pi * pitch * np.arange(samples) / SAMPLE_RATE) * 8000).astype(np.int16)


class FirstLowThenHigh(ScriptedAssistant):
    """A conversation's first answer is LONG_ANSWER (low); every later one is LATER_ANSWER (high)."""

    async def respond(self, context: ResponseContext) -> list[Say]:
        answered_before = any(item.get("role") == "assistant" for item in context.items)
        return [Say(LATER_ANSWER if answered_before else LONG_ANSWER)]


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[spectrum.argmax()])


def pitch_of(frame: np.ndarray) -> float | None:
    """LOW_HZ or HIGH_HZ, whichever a received 48 kHz frame carries; None for silence."""
    if rms(frame) < 300:
        return None
    t = np.arange(frame.size) / RATE
    power = {f: abs(np.dot(frame, np.exp(-2j * np.pi * f * t))) for f in (LOW_HZ, HIGH_HZ)}
    return max(power, key=power.__getitem__)


def heard(client: VoiceClient, pitch: float) -> list[tuple[float, float]]:
    """(arrival time, ms of tone in it) for every received frame of that pitch. A frame the tone fills only
    in part counts in part: its power against that of a full frame (the median; most frames are full)."""
    frames = [(at, float(np.mean(samples.astype(np.float64) ** 2)), samples.size * 1000 / RATE)
              for at, samples in client.received if pitch_of(samples) == pitch]
    full = float(np.median([power for _, power, _ in frames])) if frames else 1.0
    return [(at, min(1.0, power / full) * ms) for at, power, ms in frames]


@pytest.fixture(scope="module")
def app():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SESSION_IDLE_TIMEOUT_SECONDS", "2")  # a conversation nobody uses is closed within ~3 s
        with running_app("azure-ga", FirstLowThenHigh(), voice=PitchVoice) as running:
            yield running


async def test_voice_reaches_service_at_24khz_and_answer_comes_back(app):
    client, conversation = await open_voice(app)
    try:
        client.microphone.play(ToneVoice.tone("あいうえおかきくけこさしす"))  # ~0.8 s of 440 Hz
        record = app.server.connections[-1]
        await eventually(lambda: record.sent_of_type("input_audio_buffer.speech_stopped"), 10)
        heard_by_service = record.received_audio
        assert rms(heard_by_service) > 1000
        start = int(np.argmax(np.abs(heard_by_service) > 2000))
        # 440 Hz measured at 24 kHz proves the app sent 24 kHz PCM16 (a wrong rate shifts the peak).
        assert abs(dominant_frequency(heard_by_service[start : start + 12000], 24000) - 440) < 15
        await eventually(lambda: rms(client.received_audio()) > 500, 10)
        assert chatbot_messages(conversation.transcript.messages())[0] == {"role": "user", "content": "こんにちは"}
    finally:
        await client.close()
    await eventually(lambda: not conversation.voice_attached and app.registry.voice_calls == 0, 3)


@pytest.mark.parametrize("run", range(5))
async def test_barge_in_stops_the_reply_at_once_and_none_of_it_is_heard_later(app, run):
    client, conversation = await open_voice(app)
    try:
        connection = app.server.connections[-1]  # this conversation's (it connected last)
        tone = ToneVoice.tone("あいうえおかきくけこ")
        client.microphone.play(tone)
        loop = asyncio.get_running_loop()
        await eventually(lambda: heard(client, LOW_HZ), 10)
        await asyncio.sleep(1.0)  # about a second of the answer is heard
        client.microphone.play(tone)  # the user talks over it
        await eventually(lambda: len(connection.sent_of_type("input_audio_buffer.speech_started")) == 2, 5)
        interrupted_at = loop.time()
        truncate = (await eventually(lambda: connection.of_type("conversation.item.truncate"), 3))[0]
        assert 700 <= truncate["audio_end_ms"] <= 2500, truncate
        assert connection.session.audio_ms.get(truncate["item_id"]) == truncate["audio_end_ms"]  # accepted
        assert not connection.sent_of_type("error")
        # The answer to the barge-in (high) plays, and nothing of the interrupted one (low) comes after it.
        await eventually(lambda: len(heard(client, HIGH_HZ)) >= 25, 10)
        first_high = heard(client, HIGH_HZ)[0][0]
        low = heard(client, LOW_HZ)
        assert all(at < first_high for at, _ in low)
        # What came of the low reply after the barge-in is only what was already on the wire: it arrives at
        # once (not held back until the next reply), and the app's truncate counted it as heard.
        late = [round((at - interrupted_at) * 1000) for at, _ in low if at > interrupted_at + 0.25]
        assert not late, f"low-pitch frames {late} ms after the barge-in"
        overrun_ms = sum(ms for _, ms in low) - truncate["audio_end_ms"]
        assert overrun_ms <= 30, f"{overrun_ms:.0f} ms of the interrupted reply beyond what the app counted as heard"
        assert any("（中断）" in m["content"] for m in chatbot_messages(conversation.transcript.messages()))
    finally:
        await client.close()


async def test_new_conversation_mid_call_keeps_the_call_and_frees_the_slot_at_hang_up(app):
    client, old = await open_voice(app)
    tone = ToneVoice.tone("あいうえおかきくけこ")
    loop = asyncio.get_running_loop()
    try:
        old_service = app.server.connections[-1]
        client.microphone.play(tone)
        await eventually(lambda: len(chatbot_messages(old.transcript.messages())) == 2 and heard(client, LOW_HZ), 10)
        await asyncio.sleep(0.3)

        await client.call("reset")  # 「新しい会話」 in the middle of the call
        reset_at = loop.time()
        new = app.registry.peek(client.session_hash)
        assert new is not None and new is not old and old.closed
        assert new.voice_attached and not old.voice_attached and app.registry.voice_calls == 1
        await eventually(lambda: new.connected, 5)
        new_service = app.server.connections[-1]
        assert new_service is not old_service
        await asyncio.sleep(0.8)  # the old answer (9 s long) stopped with its conversation
        assert rms(client.received_audio(since=reset_at + 0.25, until=reset_at + 0.8)) < 50

        client.microphone.play(tone)  # the next utterance goes to the new service session ...
        await eventually(lambda: new_service.sent_of_type("input_audio_buffer.speech_stopped"), 10)
        # ... and is answered aloud: the new conversation's first answer, low again, heard after the reset.
        await eventually(lambda: len(chatbot_messages(new.transcript.messages())) == 2, 10)
        assert chatbot_messages(new.transcript.messages())[0] == {"role": "user", "content": "こんにちは"}
        await eventually(lambda: sum(ms for at, ms in heard(client, LOW_HZ) if at > reset_at + 0.5) >= 500, 10)
        assert len(chatbot_messages(old.transcript.messages())) == 2  # the old conversation got nothing more
    finally:
        await client.close()
    # Hanging up frees the voice slot, and the new conversation, no longer listened to, can be reaped when idle.
    await eventually(lambda: app.registry.voice_calls == 0 and not new.voice_attached, 3)
    await eventually(lambda: new.closed, 10)


async def test_voice_call_limit_refuses_the_next_caller_with_a_message(monkeypatch):
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
            assert app.registry.voice_calls == 1
            answer = await third.connect()  # beyond fastrtc's hard limit: refused at the offer
            assert answer.get("status") == "failed"
            assert answer["meta"]["error"] == "concurrency_limit_reached"
        finally:
            for client in (first, second, third):
                await client.close()


async def test_a_tick_without_a_session_leaves_the_call_waiting_for_one_that_has_it():
    from settings import RealtimeSettings
    from web.browsers import BrowserSessions

    registry = BrowserSessions(lambda: RealtimeSettings(provider="azure"))  # unconfigured: never connects
    followed: list[object] = []
    call = registry.open_call("rtc-1", followed.append, limit=2)
    registry.place_call("rtc-1", "")
    assert not call.placed.done() and registry.voice_calls == 0
    registry.place_call("rtc-1", "page-1")
    assert call.placed.result() is True and registry.voice_calls == 1
    assert followed == [registry.peek("page-1")] and followed[0].voice_attached
    registry.end_call(call)
    assert registry.voice_calls == 0 and not followed[0].voice_attached
    await registry.close("page-1", gone=True)
