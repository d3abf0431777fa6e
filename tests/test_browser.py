"""The app in a real headless Chromium: microphone (a WAV of Japanese speech), playback, text and tools.

Each test runs against the offline engine (rule-based assistant, Silero VAD, no transcription) and
against the tests' scripted Realtime server in the Azure preview dialect (transcripts are 「こんにちは」).
Needs Debian's /usr/bin/chromium, fonts-noto-cjk and `pip install playwright` (no `playwright install`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from conftest import call
from support.browser import (
    SAMPLE_RATE,
    browser_test_marks,
    chat_messages,
    event_log,
    inbound_audio_energy,
    open_page,
    screenshot,
    send_text,
    speech_wav,
    start_recording,
    stop_recording,
    tool_table,
    wait_for_chat,
    wait_for_page_ready,
    wait_until,
    write_wav,
)
from support.page_checks import chat_bubbles

from audio import rms
from offline.engine import Say

if TYPE_CHECKING:
    from support.browser_app import BrowserApp

pytest_plugins = ["support.browser_app"]  # the app, the weather stand-in and Chromium (shared fixtures)

pytestmark = browser_test_marks()

LONG_ANSWER = (
    "東京の今日の天気についてお話しします。朝のうちは晴れていますが、昼過ぎから雲が広がり、"
    "夕方には所によって雨が降るでしょう。最高気温は二十度、最低気温は十二度の予想です。"
    "お出かけの際は折りたたみ傘をお持ちください。明日は一日を通して晴れる見込みで、"
    "気温も今日より少し高くなりそうです。週末にかけては天気が崩れやすく、北風が強まる予想なので、"
    "洗濯物は早めに取り込んでください。"
)  # ~180 characters: ToneVoice speaks 60 ms per character, so it plays for about 11 seconds
SHORT_ANSWER = "こんにちは。東京は晴れています。"
# Silence before the first word: Chromium starts the WAV when the page opens the microphone, and the
# stream needs up to ~1.5 s more to reach the server (fastrtc's microphone-access step, the WebRTC handshake).
LEAD_SECONDS = 2.0
# Silence between the two utterances of the barge-in test: the answer to the first has been playing for
# a few seconds when the second starts (the answers last 8.6 s offline and ~11 s scripted).
GAP_SECONDS = 4.5
# What the chat shows for a voice turn the offline engine cannot transcribe.
UNTRANSCRIBED = "（音声を文字にできませんでした）"


def voice_connection(app: BrowserApp, since: int):
    """The realtime connection (opened after `since`) that the microphone's audio went to."""
    return next((c for c in app.new_connections(since) if c.audio), None)


def wire_name(event_type: str, app: BrowserApp) -> str:
    """The name the server used on the wire (its own table, not the client's)."""
    from offline.wire import wire_name as server_wire_name

    return server_wire_name(event_type, "ga" if app.offline else "preview")


def responses_settled(record) -> bool:
    """Every response the server started is done (the conversation is quiet)."""
    created = len(record.sent_of_type("response.created"))
    return created > 0 and created == len(record.sent_of_type("response.done"))


def loud_seconds(pcm: np.ndarray, threshold: float = 500.0) -> float:
    frames = pcm[: pcm.size - pcm.size % 480].reshape(-1, 480).astype(np.float64)
    return float((np.sqrt((frames**2).mean(axis=1)) >= threshold).sum() * 0.02)


def test_voice_turn_is_heard_answered_and_ends_on_stop(app, launch, tmp_path):
    wav = tmp_path / "speech.wav"
    [(start, end)] = speech_wav(wav, ["東京の天気を教えてください"], lead=LEAD_SECONDS, tail=2.0)
    if app.assistant is not None:
        app.assistant.rules = {"こんにちは": lambda m: [Say(SHORT_ANSWER)]}
    from offline.replies import voice_not_transcribed_reply

    said, answer = (UNTRANSCRIBED, voice_not_transcribed_reply()) if app.offline else ("こんにちは", SHORT_ANSWER)
    since = len(app.server.connections)
    page, hashes = open_page(launch(wav), app.url)
    conversation = app.conversation_of(hashes.current)
    start_recording(page)
    assert wait_until(page, lambda: conversation.voice_attached, 5, "the voice handler joined the conversation")

    # The realtime side gets the microphone as 24 kHz PCM16, in real time, and its VAD finds the turn.
    record = wait_until(page, lambda: voice_connection(app, since), 10, "audio reached the realtime server")
    wait_until(page, lambda: record.sent_of_type("input_audio_buffer.speech_started"), 10, "speech_started")
    # Measured in steady streaming (what was held while connecting arrives in a burst first), over 2 s so a
    # scheduling stall on a busy machine does not read as a wrong rate.
    first = (time.monotonic(), record.received_audio.size)
    wait_until(page, lambda: time.monotonic() - first[0] >= 2.0, 3, "two seconds of streaming")
    rate = (record.received_audio.size - first[1]) / (time.monotonic() - first[0])
    assert 0.8 * SAMPLE_RATE < rate < 1.25 * SAMPLE_RATE, f"audio arrives at {rate:.0f} samples/s, not 24 kHz"
    wait_until(page, lambda: record.sent_of_type("input_audio_buffer.speech_stopped"), 10,
               lambda: f"speech_stopped after the utterance (RMS of the last 0.5 s the server got: "
                       f"{rms(record.received_audio[-SAMPLE_RATE // 2:]):.0f}; it should be near silence)")
    audio = record.received_audio
    assert audio.dtype == np.int16 and rms(audio) > 300, f"the microphone audio is silent (RMS {rms(audio):.0f})"
    assert 1.0 <= loud_seconds(audio) <= (end - start) + 0.6, (
        f"{loud_seconds(audio):.2f} s of loud audio for a {end - start:.2f} s utterance")

    # The page shows the turn and the spoken answer's transcript, and plays non-silent audio.
    messages = wait_for_chat(page, lambda m: ("assistant", answer) in m, 20, "the spoken answer's transcript")
    assert messages.index(("user", said)) < messages.index(("assistant", answer)), messages
    assert wait_until(page, lambda: inbound_audio_energy(page) > 0, 10, "the page received the answer's audio")
    screenshot(page, f"{app.mode}-voice-answered")

    # Stopping the recording ends the voice session on the server promptly.
    assert conversation.voice_attached
    stopped_at = time.monotonic()
    stop_recording(page)
    wait_until(page, lambda: not conversation.voice_attached, 2.0, "voice_attached false after 停止")
    assert time.monotonic() - stopped_at < 2.5
    assert not conversation.closed, "stopping the microphone must not end the conversation"


def test_typed_messages_run_tools_and_the_table_ticks(app, launch):
    if app.assistant is not None:
        app.assistant.rules = {
            r"AIについて": lambda m: [call("search_database", query="AI")],
            r"天気": lambda m: [call("get_weather", location="東京", day="today")],
        }
    since = len(app.server.connections)
    page, _ = open_page(launch(None), app.url)

    def rows(tool: str) -> list[list[str]]:
        return [r for r in tool_table(page) if len(r) == 6 and r[1] == tool]

    send_text(page, "AIについて調べて")
    running = wait_until(page, lambda: [r for r in rows("search_database") if r[3].startswith("実行中")], 10,
                         "the search shows as running in the tool table")[0]
    first_elapsed = float(running[4])
    assert first_elapsed < 1.5, f"the running search appeared late in the table: {running}"
    send_text(page, "東京の天気は？")
    # The running call's elapsed seconds visibly tick up while the conversation goes on.
    wait_until(page, lambda: any(r[3].startswith("実行中") and float(r[4]) >= first_elapsed + 0.5
                                 for r in rows("search_database")),
               5, f"the running search's elapsed seconds to grow past {first_elapsed} while it runs")
    screenshot(page, f"{app.mode}-text-tool-running")

    if app.offline:
        from offline.replies import started_reply

        started = lambda t: t == started_reply("search_database")  # noqa: E731
        weather_answer = lambda t: t.startswith("今日の東京は")  # noqa: E731
        search_answer = lambda t: t.startswith("「AI」の検索結果は")  # noqa: E731
    else:
        started = lambda t: t.startswith("result:") and '"started"' in t  # noqa: E731
        weather_answer = lambda t: t.startswith("result:") and "東京" in t and '"hits"' not in t  # noqa: E731
        search_answer = lambda t: t.startswith("result:") and '"hits"' in t  # noqa: E731

    def index_of(messages, role, matches) -> int | None:
        return next((i for i, (r, t) in enumerate(messages) if r == role and matches(t)), None)

    def answered(messages) -> bool:
        found = [index_of(messages, "user", lambda t: t == "AIについて調べて"),
                 index_of(messages, "assistant", started),
                 index_of(messages, "user", lambda t: t == "東京の天気は？"),
                 index_of(messages, "assistant", weather_answer),
                 index_of(messages, "assistant", search_answer)]
        return None not in found and found[:4] == sorted(found[:4]) and found[4] > found[1]

    wait_for_chat(page, answered, 20, "both answers in order (search started, weather, then the search result)")
    # Each answer is its own bubble, in conversation order: the search result does not join another answer.
    bubbles = chat_bubbles(page)
    assert all(len(texts) == 1 for _, texts in bubbles), bubbles
    assert answered([(role, texts[0]) for role, texts in bubbles]), bubbles
    record = app.new_connections(since)[0]
    wait_until(page, lambda: responses_settled(record), 20, "every response of the conversation done")
    # A page without a voice call asks for text-only answers; with one, the answer's transcript is its text.
    done = [e for e in record.sent if e["type"] in (wire_name("response.output_audio_transcript.done", app),
                                                    wire_name("response.output_text.done", app))]
    final = done[-1].get("transcript") or done[-1]["text"]
    wait_for_chat(page, lambda m: m[-1] == ("assistant", final), 10, "the last answer's final transcript")

    def finished() -> list[list[str]] | None:
        table = tool_table(page)
        return table if len(table) == 2 and all(r[3] == "完了" for r in table) else None

    table = wait_until(page, finished, 10, "both tool calls show 完了 in the table")
    assert not page.get_by_text("まだツールは実行されていません").is_visible()
    # Newest first: the weather call was started after the search.
    assert [r[1] for r in table] == ["get_weather", "search_database"], table
    weather_row, search = table
    assert float(search[4]) >= 3.0 and "件" in search[5], search  # SEARCH_LATENCY_SECONDS=3
    assert "東京" in weather_row[2] and "東京" in weather_row[5] and "℃" in weather_row[5], weather_row
    # The forecast came from the local Open-Meteo (the service caches it, so only the first call fetches).
    assert app.weather.forecast_requests, "the weather tool did not use the local Open-Meteo"
    screenshot(page, f"{app.mode}-text-done")


def test_speech_during_the_answer_interrupts_it(app, launch, tmp_path):
    wav = tmp_path / "two-utterances.wav"
    speech_wav(wav, ["東京の天気を教えてください", "ちょっと待ってください"], lead=LEAD_SECONDS, gap=GAP_SECONDS,
               tail=2.0)
    if app.assistant is not None:
        app.assistant.rules = {"こんにちは": lambda m: [Say(LONG_ANSWER)]}
    from offline.replies import voice_not_transcribed_reply

    answer = voice_not_transcribed_reply() if app.offline else LONG_ANSWER
    since = len(app.server.connections)
    page, hashes = open_page(launch(wav), app.url)
    conversation = app.conversation_of(hashes.current)
    start_recording(page)

    # The answer to the first utterance starts playing in the page ...
    wait_for_chat(page, lambda m: any(r == "assistant" and t.startswith(answer[:8]) for r, t in m), 20,
                  "the answer to the first utterance")
    wait_until(page, lambda: inbound_audio_energy(page) > 0, 10, "the answer playing in the page")
    record = voice_connection(app, since)
    # ... and the second utterance stops it: the app truncates the item at what was heard and marks it.
    truncate = wait_until(page, lambda: record.of_type("conversation.item.truncate"), 15,
                          lambda: f"conversation.item.truncate after the second utterance; {event_log(record)}; "
                                  f"chat {chat_messages(page)}")[0]
    messages = wait_for_chat(page, lambda m: any(r == "assistant" and t.endswith("（中断）") for r, t in m), 10,
                             "the interrupted answer marked （中断）")
    cut = next(t for r, t in messages if r == "assistant" and t.endswith("（中断）"))
    assert cut.startswith(answer[:8]), messages
    if app.offline:
        from offline.speech import synthesize_sentences

        full_ms = sum(pcm.size for pcm in synthesize_sentences(answer)) * 1000 // SAMPLE_RATE
    else:
        full_ms = 60 * len(answer)  # ToneVoice
    assert 0 < truncate["audio_end_ms"] < full_ms, f"cut at {truncate['audio_end_ms']} of {full_ms} ms"
    assert conversation.interruptions >= 2  # the first utterance and the barge-in
    assert len(record.sent_of_type("input_audio_buffer.speech_started")) >= 2
    screenshot(page, f"{app.mode}-barge-in")


def test_reload_ends_the_old_conversation_and_starts_a_clean_one(app, launch, tmp_path):
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE * 3, dtype=np.int16))
    since = len(app.server.connections)
    page, hashes = open_page(launch(wav), app.url)
    old_hash = hashes.current
    old = app.conversation_of(old_hash)
    start_recording(page)
    wait_until(page, lambda: old.voice_attached, 5, "the voice handler joined the conversation")
    send_text(page, "こんにちは")
    wait_for_chat(page, lambda m: len(m) >= 2 and m[-1][0] == "assistant" and m[-1][1], 15, "a first answer")
    old_connections = app.new_connections(since)
    assert old_connections

    page.reload()
    wait_for_page_ready(page)
    new_hash = hashes.current
    assert new_hash and new_hash != old_hash

    # The old conversation is closed on the server: no session, task, voice handler or connection left.
    wait_until(page, lambda: old.closed, 5, "the old session closed after the reload")
    wait_until(page, lambda: not old.voice_attached, 5, "the old voice handler shut down")
    assert app.registry.peek(old_hash) is None
    wait_until(page, lambda: all(c.connection.state.name == "CLOSED" for c in old_connections), 5,
               "the old realtime connection closed")

    # The new page has a clean conversation of its own, and it works.
    assert chat_messages(page) == []
    new = app.conversation_of(new_hash)
    assert new is not old and not new.transcript.items and not new.voice_attached
    send_text(page, "こんにちは")
    messages = wait_for_chat(page, lambda m: len(m) >= 2 and m[-1][0] == "assistant" and m[-1][1], 15,
                             "an answer in the new conversation")
    assert messages[0] == ("user", "こんにちは") and len([m for m in messages if m[0] == "user"]) == 1
    wait_until(page, lambda: app.registry.live == 1, 10,
               lambda: f"only the reloaded page's session is live (live: {app.registry.live})")
    screenshot(page, f"{app.mode}-after-reload")


@pytest.fixture(autouse=True)
def fresh_rules(app):
    if app.assistant is not None:
        app.assistant.rules = {}
