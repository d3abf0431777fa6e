"""Voice calls that end without a hang-up, and calls that are refused: real aiortc peers against the app.

A caller that vanishes (its microphone stops, its process is killed, its page closes) frees its voice slot
long before WebRTC's own ~30 s consent timeout would; a refused call is one log line, and an offer prints nothing.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ScriptedAssistant, eventually
from support.apphost import open_voice, running_app
from support.webrtc_client import VoiceClient

from benchmarks.soak_voice_calls import ENDINGS, soak_voice_calls
from settings import load_settings

VANISHED_LIMIT_SECONDS = 15.0  # the slot is free this soon after the caller's media stops
PAGE_CLOSED_LIMIT_SECONDS = 5.0  # ... and this soon after its page closes
PEER = Path(__file__).resolve().parent / "support" / "vanishing_peer.py"


@pytest.fixture(scope="module")
def app():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAX_VOICE_SESSIONS", "1")  # one stuck call would lock everybody out
        with running_app("azure-ga", ScriptedAssistant()) as running:
            yield running


async def slot_freed_within(app, limit: float) -> float:
    """Seconds until no voice call holds a slot (fails after `limit`)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await eventually(lambda: app.registry.voice_calls == 0, limit)
    return loop.time() - started


async def the_same_page_can_call_again(app, session_hash: str) -> None:
    client = VoiceClient(app.url, session_hash)
    try:
        assert (await client.connect()).get("sdp")
        await eventually(lambda: app.registry.voice_calls == 1, 5)
        assert not any(m.get("type") in ("warning", "end_stream") for m in client.messages)
    finally:
        await client.close()
    await eventually(lambda: app.registry.voice_calls == 0, 3)


def test_the_media_timeout_is_a_setting_with_a_default_of_10_seconds():
    assert load_settings({}).voice_media_timeout == 10.0
    assert load_settings({"VOICE_MEDIA_TIMEOUT_SECONDS": "4"}).voice_media_timeout == 4.0
    assert load_settings({"VOICE_MEDIA_TIMEOUT_SECONDS": "0"}).voice_media_timeout == 10.0


async def test_a_caller_whose_microphone_stops_is_hung_up_and_its_slot_freed(app):
    client, conversation = await open_voice(app)
    try:
        await asyncio.sleep(1.0)  # a call that keeps sending is left alone
        assert app.registry.voice_calls == 1
        client.microphone.stall()
        freed = await slot_freed_within(app, VANISHED_LIMIT_SECONDS)
        print(f"slot free {freed:.1f} s after the microphone stopped")
        assert freed >= 8.0, f"hung up {freed:.1f} s after the microphone stopped: too early"
        assert not conversation.voice_attached and not conversation.closed  # the conversation itself goes on
        await eventually(lambda: client.pc.connectionState == "closed", 5)  # the call itself was ended
    finally:
        await client.close()
    await the_same_page_can_call_again(app, client.session_hash)


async def test_a_caller_whose_process_dies_frees_its_slot_within_15_seconds(app):
    session_hash = "vanishing01"
    peer = subprocess.Popen([sys.executable, str(PEER), app.url, session_hash], stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(peer.stdout.readline), 30)
        assert line.strip() == "ready", line
        await eventually(lambda: app.registry.voice_calls == 1, 10)
    finally:
        peer.kill()  # SIGKILL: no Stop, no goodbye, nothing more on the wire
        peer.wait()
    freed = await slot_freed_within(app, VANISHED_LIMIT_SECONDS)
    print(f"slot free {freed:.1f} s after the caller's process was killed")
    await the_same_page_can_call_again(app, session_hash)


async def test_closing_the_page_frees_its_call_within_5_seconds(app):
    client = VoiceClient(app.url)
    try:
        async with client.page_open():
            assert (await client.connect()).get("sdp")
            await eventually(lambda: app.registry.voice_calls == 1, 10)
            await asyncio.sleep(0.5)
        # The page is gone; its peer never said goodbye and even keeps sending: only the page's unload can end it.
        freed = await slot_freed_within(app, PAGE_CLOSED_LIMIT_SECONDS)
        print(f"slot free {freed:.2f} s after the page closed")
        await eventually(lambda: client.pc.connectionState == "closed", 5)
        assert app.registry.peek(client.session_hash) is None
    finally:
        await client.close()


async def test_a_refused_call_is_one_log_line_no_traceback_and_an_offer_prints_nothing(app, caplog, capfd):
    caplog.set_level(logging.INFO)
    first, _session = await open_voice(app)
    second = VoiceClient(app.url)
    try:
        assert (await second.connect()).get("sdp")
        refusal = await eventually(lambda: next((m for m in second.messages if m.get("type") == "warning"), None), 5)
        assert "上限（1）" in refusal["message"]
        await eventually(lambda: any(m.get("type") == "end_stream" for m in second.messages), 5)  # the page stops
        await asyncio.sleep(1.5)  # what the end of the refused call logs has been logged by now
        records = caplog.records
        tracebacks = [r.getMessage()[:200] for r in records if r.exc_info or "Traceback" in r.getMessage()]
        assert tracebacks == []
        assert len([r for r in records if "refused a voice call" in r.getMessage()]) == 1
        await eventually(lambda: second.pc.connectionState == "closed", 5)  # the server hung up on it
        assert app.registry.voice_calls == 1
        assert "content_type" not in capfd.readouterr().out  # two offers, nothing printed
    finally:
        for client in (first, second):
            await client.close()
    await eventually(lambda: app.registry.voice_calls == 0, 3)


@pytest.mark.timeout(240)
async def test_20_calls_ended_abruptly_leave_no_slot_conversation_service_connection_or_task(app):
    figures = await soak_voice_calls(app, 20)
    print(figures.line())
    assert figures.calls == 20 and figures.answered_aloud == len(range(0, 20, len(ENDINGS)))
    assert (figures.voice_slots, figures.live_conversations, figures.service_connections) == (0, 0, 0)
    assert figures.leaked_tasks == {}


async def test_a_call_ends_at_its_time_limit_with_a_japanese_notice(monkeypatch):
    monkeypatch.setenv("VOICE_SESSION_TIME_LIMIT_SECONDS", "2")
    with running_app("azure-ga", ScriptedAssistant()) as app:
        client, conversation = await open_voice(app)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            end = await eventually(lambda: next((m for m in client.messages if m.get("type") == "end_stream"), None),
                                   5)
            assert "上限時間" in end["data"] and 1.5 <= loop.time() - started <= 4
            await eventually(lambda: app.registry.voice_calls == 0 and client.pc.connectionState == "closed", 3)
            assert not conversation.closed
        finally:
            await client.close()


async def test_what_the_caller_says_before_the_call_is_placed_reaches_the_service(server):
    """The page's tick that places a call can come seconds after the microphone's first packets on a busy
    server; what was said meanwhile (its latest EARLY_AUDIO_SECONDS) is sent once placed, in order."""
    from conftest import settings_for

    from audio import SAMPLE_RATE
    from conversation.conversation import Conversation
    from web.browsers import BrowserSessions
    from web.voice import EARLY_AUDIO_SECONDS, VoiceHandler

    conversation = Conversation(settings_for(server, "azure-ga"))
    conversation.start()
    handler = VoiceHandler(BrowserSessions(lambda: settings_for(server, "azure-ga")))
    frame = SAMPLE_RATE // 50  # 20 ms
    try:
        assert await conversation.wait_connected(5)
        for n in range(1, 51):  # 1 s said before the call is placed, each frame numbered by its level
            await handler.receive((SAMPLE_RATE, np.full((1, frame), n * 100, dtype=np.int16)))
        handler.follow(conversation)
        await handler.receive((SAMPLE_RATE, np.full((1, frame), 6000, dtype=np.int16)))
        record = server.connections[-1]
        await eventually(lambda: record.received_audio.size == 51 * frame, 5)
        levels = record.received_audio.reshape(51, frame)[:, 0].tolist()
        assert levels == [n * 100 for n in range(1, 51)] + [6000]  # all of it, in the order said
        late = VoiceHandler(BrowserSessions(lambda: settings_for(server, "azure-ga")))
        kept = int(EARLY_AUDIO_SECONDS * 50)  # frames
        for n in range(kept + 100):  # a call placed only after 5 s: its latest 3 s are kept, no more
            await late.receive((SAMPLE_RATE, np.full((1, frame), 7000 if n < kept else 8000, dtype=np.int16)))
        late.follow(conversation)
        await late.receive((SAMPLE_RATE, np.full((1, frame), 6000, dtype=np.int16)))
        await eventually(lambda: record.received_audio.size == (51 + kept + 1) * frame, 5)
        levels = record.received_audio.reshape(-1, frame)[51:, 0].tolist()
        assert levels == [7000] * (kept - 100) + [8000] * 100 + [6000]  # contiguous with what follows
    finally:
        await conversation.close()
