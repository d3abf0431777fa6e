"""Offline speech recognition with a real Whisper model (base, assembled from its test packages)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import numpy as np
import pytest
from conftest import eventually
from support.service import InstrumentedServer
from support.whisper_model import plain, whisper_base_dir

from conversation.conversation import Conversation
from offline.asr import SpeechRecognition, _LogProgress, locate_model
from offline.engine import TranscriptionFailed
from offline.runtime import build_offline_server
from offline.speech import synthesize
from settings import RealtimeSettings, load_settings
from web.chat import chatbot_messages

SILENCE = np.zeros(24_000, np.int16)


@pytest.fixture(scope="module")
def recognition():
    model = SpeechRecognition(str(whisper_base_dir()))
    assert model.wait_loaded(60), model.problem()
    yield model
    model.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("question", ["明日の大阪の天気を教えて", "AIについて調べて"])
def test_synthesised_japanese_questions_come_back_exactly(recognition, question):
    speech = synthesize(question)
    assert plain(recognition.transcribe_blocking(speech)) == question


def test_silence_is_not_given_words(recognition):
    assert recognition.transcribe_blocking(np.zeros(24_000 * 2, np.int16)) == ""


async def test_recognition_runs_off_the_event_loop(recognition):
    speech = await asyncio.to_thread(synthesize, "東京の天気は晴れのち曇りでしょう")
    gaps, last, running = [], time.perf_counter(), True

    async def tick() -> None:
        nonlocal last
        while running:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    text = await recognition.transcribe(speech)
    took = time.perf_counter() - started
    running = False
    await ticker
    assert "東京" in text
    # The loop kept turning meanwhile (on the loop itself, one gap would last the whole recognition).
    assert took > 0.2 and max(gaps) < took / 2 and sorted(gaps)[len(gaps) // 2] < 0.05, (took, max(gaps))


def test_a_missing_folder_is_reported_not_raised(tmp_path):
    model = SpeechRecognition(str(tmp_path / "no-such-model"))
    assert not model.wait_loaded(10)
    assert "見つかりません" in model.problem() and "no-such-model" in model.problem()
    with pytest.raises(TranscriptionFailed, match="見つかりません"):
        asyncio.run(model.transcribe(SILENCE))


def test_a_folder_without_the_model_files_is_reported(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TranscriptionFailed, match=r"model\.bin"):
        locate_model(str(tmp_path))


def test_a_corrupt_model_is_reported(tmp_path):
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"not a model")
    model = SpeechRecognition(str(tmp_path))
    assert not model.wait_loaded(30)
    assert "読み込めませんでした" in model.problem()


def test_no_network_means_no_download_and_a_reason(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # really try: a closed local port
    started = time.perf_counter()
    model = SpeechRecognition("small", download_root=str(tmp_path), endpoint=f"http://127.0.0.1:{closed_port()}")
    assert not model.wait_loaded(60)
    assert "「small」をダウンロードできませんでした（ネットワークに接続できません）" in model.problem()
    assert time.perf_counter() - started < 30
    assert not list(tmp_path.rglob("model.bin"))


def test_download_progress_goes_to_the_log(caplog):
    caplog.set_level(logging.INFO, logger="offline.asr")
    with _LogProgress(total=145_000_000, unit="B", unit_scale=True, desc="Downloading bytes") as bar:
        for _ in range(20):
            bar.update(7_250_000)
            bar.refresh()
    lines = [r.getMessage() for r in caplog.records if "ダウンロード中" in r.getMessage()]
    assert 5 <= len(lines) <= 12 and lines[-1].startswith("音声認識モデルをダウンロード中: 100%"), lines
    assert "145 MB" in lines[-1]


def test_an_unknown_size_name_lists_the_known_ones():
    with pytest.raises(TranscriptionFailed, match="base"):
        locate_model("gigantic")


def test_offline_settings_come_from_the_environment():
    default = load_settings({}).offline
    assert default.asr_model == "base" and default.recognition_on and not default.language_model_on
    chosen = load_settings({"OFFLINE_ASR_MODEL": " small ", "OFFLINE_LLM_BASE_URL": "http://localhost:11434/v1",
                            "OFFLINE_LLM_MODEL": "qwen2.5:7b"}).offline
    assert chosen.asr_model == "small"
    assert chosen.language_model_on and chosen.llm_model == "qwen2.5:7b"
    assert not load_settings({"OFFLINE_LLM_MODEL": "qwen2.5:7b"}).offline.language_model_on  # half a setting: rules
    assert not load_settings({"OFFLINE_ASR_MODEL": "none"}).offline.recognition_on


async def test_two_utterances_are_transcribed_in_order_while_audio_keeps_flowing(recognition):
    """Through the engine and the app's conversation: real VAD, real recognition, events in order."""
    server = build_offline_server(speed=8.0, recognition=recognition, server_class=InstrumentedServer)
    await server.start()
    settings = RealtimeSettings(provider="offline", model="offline-assistant", api_key="offline",
                                base_url=f"{server.url}/v1")
    conversation = Conversation(settings)
    conversation.start()
    try:
        assert await conversation.wait_connected(10)
        first, second = await asyncio.gather(asyncio.to_thread(synthesize, "こんにちは"),
                                             asyncio.to_thread(synthesize, "ありがとう"))
        audio = np.concatenate([SILENCE, first, SILENCE, second, SILENCE, SILENCE])
        for start in range(0, audio.size, 2400):  # 100 ms chunks, as fast as the socket takes them
            await conversation.append_audio(audio[start : start + 2400])
        record = server.connections[-1]
        done = await eventually(lambda: len(c := record.sent_of_type(
            "conversation.item.input_audio_transcription.completed")) == 2 and c, 30)
        assert [plain(e["transcript"]) for e in done] == ["こんにちは", "ありがとう"]
        committed = [e["item_id"] for e in record.sent_of_type("input_audio_buffer.committed")]
        assert [e["item_id"] for e in done] == committed
        def heard() -> list[str]:  # the client reads the socket after the server wrote it: wait for both
            users = [m["content"] for m in chatbot_messages(conversation.transcript.messages()) if m["role"] == "user"]
            return users if len(users) == 2 and "🎤 …" not in users else []

        assert [plain(u) for u in await eventually(heard, 10)] == ["こんにちは", "ありがとう"]
    finally:
        await conversation.close()
        await server.stop()


def test_the_page_says_from_the_start_why_speech_is_not_understood(tmp_path):
    from offline.runtime import OfflineEngine
    from settings import OfflineSettings
    from web.page import PageEvents

    missing = str(tmp_path / "no-such-model")
    recognition = SpeechRecognition(missing)
    assert not recognition.wait_loaded(30)
    engine = OfflineEngine("ws://127.0.0.1:9/v1", OfflineSettings(asr_model=missing), recognition)
    line = PageEvents(None, "オフラインモード（内蔵のルールベース・アシスタント）", engine).status(None)  # type: ignore[arg-type]
    assert f"🎤 音声認識は使えません: {recognition.unavailable}" in line and "no-such-model" in line
    none = OfflineEngine("ws://127.0.0.1:9/v1", OfflineSettings(asr_model="none"), None)
    assert "OFFLINE_ASR_MODEL" in PageEvents(None, "オフラインモード", none).status(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["small.en", "distil-large-v3.5", "Systran/faster-whisper-small"])
def test_size_names_and_hub_ids_are_fetched_not_taken_for_folders(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is never reached in tests: the download is what fails
    with pytest.raises(TranscriptionFailed) as failed:
        locate_model(name)
    assert "ダウンロード" in str(failed.value) and "フォルダ" not in str(failed.value)
