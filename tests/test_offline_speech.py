"""Offline TTS (pyopenjtalk) and turn detection (Silero VAD / RMS gate)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from offline import speech

RATE = speech.SAMPLE_RATE
TEXT = "東京の天気は晴れです"


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    return speech.synthesize(TEXT)


@pytest.fixture(scope="module")
def utterance(spoken: np.ndarray) -> np.ndarray:
    """1 s silence + speech + 1.5 s silence."""
    return np.concatenate([np.zeros(RATE, np.int16), spoken, np.zeros(RATE * 3 // 2, np.int16)])


def _voiced_span_ms(pcm: np.ndarray) -> tuple[float, float]:
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 1000)[0]
    return loud[0] * 1000 / RATE, loud[-1] * 1000 / RATE


def _feed_in_chunks(detector, pcm: np.ndarray, sizes: list[int]) -> list[speech.VadEvent]:
    events, i, k = [], 0, 0
    while i < pcm.size:
        n = sizes[k % len(sizes)]
        events += detector.feed(pcm[i : i + n])
        i, k = i + n, k + 1
    return events


# --- TTS ---------------------------------------------------------------------------------------


def test_synthesize_format(spoken: np.ndarray) -> None:
    assert spoken.dtype == np.int16 and spoken.ndim == 1
    assert 0.5 <= spoken.size / RATE <= 5.0
    assert _rms(spoken) > 500
    assert np.count_nonzero(np.abs(spoken.astype(np.int32)) >= 32767) < spoken.size * 0.001


def test_synthesize_is_band_limited(spoken: np.ndarray) -> None:
    spectrum = np.abs(np.fft.rfft(spoken.astype(np.float64)))
    freqs = np.fft.rfftfreq(spoken.size, 1 / RATE)
    assert spectrum[freqs > 11_500].max() < spectrum.max() * 0.01  # nothing aliased near Nyquist


def test_synthesize_empty_and_punctuation() -> None:
    for text in ("", "   ", "。！？"):
        out = speech.synthesize(text)
        assert out.dtype == np.int16 and out.size == 0


def test_synthesize_ascii() -> None:
    out = speech.synthesize("OK")
    assert out.dtype == np.int16 and out.size > RATE // 10 and _rms(out) > 100


def test_split_sentences() -> None:
    expected = ["晴れです。", "明日は雨！", "本当？", "はい…。"]
    assert speech.split_sentences("晴れです。明日は雨！本当？\nはい…。") == expected
    assert speech.split_sentences("。。") == []


def test_synthesize_sentences() -> None:
    parts = list(speech.synthesize_sentences("今日は晴れです。明日は雨です！"))
    assert len(parts) == 2
    assert all(p.dtype == np.int16 and p.size > RATE // 2 for p in parts)
    assert list(speech.synthesize_sentences("")) == []


async def test_synthesize_from_threads() -> None:
    outs = await asyncio.gather(*(asyncio.to_thread(speech.synthesize, "こんにちは") for _ in range(3)))
    assert all(np.array_equal(outs[0], o) for o in outs[1:]) and outs[0].size > 0


# --- Silero turn detection ---------------------------------------------------------------------


def test_turn_detector_on_utterance(utterance: np.ndarray, spoken: np.ndarray) -> None:
    detector = speech.SileroSpeechDetector()
    events = detector.feed(utterance)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    started, stopped = events[0].audio_ms, events[1].audio_ms
    assert abs(started - (1000 - 300)) <= 400
    onset, offset = (1000 + t for t in _voiced_span_ms(spoken))
    assert onset - 300 - 150 <= started <= onset - 300 + 100  # padding applied to the real onset
    assert offset + 700 - 100 <= stopped <= offset + 700 + 400  # trailing silence is included
    assert stopped <= utterance.size * 1000 / RATE


def test_turn_detector_chunking_is_irrelevant(utterance: np.ndarray) -> None:
    detector = speech.SileroSpeechDetector()
    whole = detector.feed(utterance)
    for sizes in ([1, 7, 333, 4801], [480], [2400, 17]):
        detector.reset()
        assert _feed_in_chunks(detector, utterance, sizes) == whole


def test_turn_detector_accepts_bytes(utterance: np.ndarray) -> None:
    assert speech.SileroSpeechDetector().feed(utterance.tobytes()) == speech.SileroSpeechDetector().feed(utterance)


def test_turn_detector_ignores_silence_and_noise() -> None:
    rng = np.random.default_rng(0)
    detector = speech.SileroSpeechDetector()
    assert detector.feed(np.zeros(RATE * 3, np.int16)) == []
    detector.reset()
    assert detector.feed((rng.standard_normal(RATE * 3) * 150).astype(np.int16)) == []


def test_turn_detector_parameters_and_reset(utterance: np.ndarray) -> None:
    default = speech.SileroSpeechDetector().feed(utterance)
    custom = speech.SileroSpeechDetector(silence_duration_ms=300, prefix_padding_ms=0).feed(utterance)
    assert custom[0].audio_ms == pytest.approx(default[0].audio_ms + 300, abs=40)
    assert custom[1].audio_ms < default[1].audio_ms
    detector = speech.SileroSpeechDetector()
    detector.feed(utterance[: RATE * 3 // 2])  # stop in the middle of speech
    detector.reset()
    assert detector.feed(utterance) == default  # time and state start over


# --- energy detector ---------------------------------------------------------------------------


def _tone(ms: int, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(RATE * ms // 1000) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def _silence(ms: int) -> np.ndarray:
    return np.zeros(RATE * ms // 1000, np.int16)


def test_energy_detector_tone_bursts() -> None:
    # two bursts separated by less than the silence duration form one turn
    signal = np.concatenate([_silence(1000), _tone(500), _silence(400), _tone(500), _silence(1000),
                             _tone(300), _silence(800)])
    events = speech.EnergySpeechDetector().feed(signal)
    assert events == [
        speech.VadEvent("speech_started", 700),
        speech.VadEvent("speech_stopped", 3100),
        speech.VadEvent("speech_started", 3100),
        speech.VadEvent("speech_stopped", 4400),
    ]
    detector = speech.EnergySpeechDetector()
    assert _feed_in_chunks(detector, signal, [1, 999, 12345]) == events


def test_energy_detector_quiet_input() -> None:
    detector = speech.EnergySpeechDetector()
    assert detector.feed(_tone(2000, amplitude=100)) == []
    detector.reset()
    assert detector.feed(_silence(2000)) == []
