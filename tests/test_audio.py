"""Audio conversions and paced playback (audio.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    TAIL_FRAMES,
    Cue,
    Playback,
    decode_pcm16,
    encode_pcm16,
    resample,
    to_mono_int16,
    to_realtime_pcm,
)


@pytest.mark.parametrize("shape", [(960,), (1, 960), (960, 1), (2, 960)])
def test_any_fastrtc_layout_becomes_1d_int16(shape):
    audio = np.full(shape, 1000, np.int16)
    out = to_mono_int16(audio)
    assert out.dtype == np.int16 and out.shape == (960,)
    assert np.all(out == 1000)


def test_quiet_int16_frames_stay_quiet():
    # A near-silent (1, N) int16 frame must not be mistaken for normalised float audio.
    out = to_mono_int16(np.array([[0, 1, -1, 0]], np.int16))
    assert out.tolist() == [0, 1, -1, 0]
    assert to_mono_int16(np.array([[0, 2, -2, 0], [0, 0, 0, 0]], np.int16)).tolist() == [0, 1, -1, 0]


def test_float_audio_is_scaled_not_truncated():
    out = to_mono_int16(np.array([0.5, -1.0, 1.0], np.float32))
    assert out.tolist() == [16384, -32767, 32767]


def test_48k_browser_frame_becomes_24k_with_the_same_pitch():
    t = np.arange(4800) / 48_000
    tone = (np.sin(2 * np.pi * 1000 * t) * 10_000).astype(np.int16).reshape(1, -1)
    out = to_realtime_pcm(48_000, tone)
    assert out.size == 2400
    spectrum = np.abs(np.fft.rfft(out.astype(float)))
    assert abs(np.fft.rfftfreq(out.size, 1 / SAMPLE_RATE)[spectrum.argmax()] - 1000) < 20


def test_resample_keeps_duration():
    assert resample(np.zeros(16_000, np.int16), 16_000, 24_000).size == 24_000
    same = np.arange(10, dtype=np.int16)
    assert resample(same, 24_000, 24_000) is same


def test_pcm16_base64_round_trip_is_little_endian():
    pcm = np.array([1, -2, 32767, -32768], np.int16)
    payload = encode_pcm16(pcm)
    assert np.array_equal(decode_pcm16(payload), pcm)
    assert payload == "AQD+//9/AIA="


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_playback_paces_20ms_frames_and_pads_the_last_one():
    clock = FakeClock()
    playback = Playback(lead_ms=60, clock=clock)
    playback.add("item_a", np.ones(FRAME_SAMPLES * 5 + 100, np.int16))
    frames = []
    while (frame := playback.next_frame()) is not None:
        frames.append(frame)
    assert len(frames) == 4  # 20 ms now + up to 60 ms ahead of the clock
    clock.now += 0.02
    assert playback.next_frame() is not None
    playback.finish("item_a")
    clock.now += 0.1
    last = playback.next_frame()
    assert last is not None and last.shape == (FRAME_SAMPLES,) and last.dtype == np.int16
    assert last[:100].tolist() == [1] * 100 and not last[100:].any()


def test_interrupt_reports_what_was_heard_and_drops_the_rest():
    clock = FakeClock()
    playback = Playback(lead_ms=60, clock=clock)
    playback.add("item_a", np.ones(SAMPLE_RATE, np.int16))  # 1 s received
    for _ in range(50):  # play 500 ms in real time
        while playback.next_frame() is not None:
            pass
        clock.now += 0.01
    stopped = playback.interrupt()
    assert stopped is not None and stopped.item_id == "item_a" and stopped.received_ms == 1000
    assert 480 <= stopped.played_ms <= 520  # released frames minus what was still ahead of the clock
    assert playback.next_frame() is None and not playback.busy


def test_interrupt_before_anything_played_names_the_item_with_zero_ms():
    playback = Playback(clock=FakeClock())
    playback.add("item_b", np.ones(4800, np.int16))
    stopped = playback.interrupt()
    assert stopped is not None and (stopped.item_id, stopped.played_ms) == ("item_b", 0)
    assert Playback().interrupt() is None


def test_an_answer_heard_to_the_end_is_not_reported_when_the_user_speaks_next():
    clock = FakeClock()
    playback = Playback(lead_ms=60, clock=clock)
    playback.add("item_a", np.ones(FRAME_SAMPLES * 3, np.int16))
    playback.finish("item_a")
    for _ in range(20):
        playback.next_frame()
        clock.now += 0.02
    assert playback.interrupt() is None  # nothing was cut: the answer must stay in the conversation


async def test_the_speaker_is_woken_by_audio_and_told_of_a_barge_in_at_once():
    playback = Playback()
    speaker = asyncio.create_task(playback.next_out(idle=10))
    await asyncio.sleep(0.01)
    playback.add("item_a", np.ones(FRAME_SAMPLES * 10, np.int16))
    frame = await asyncio.wait_for(speaker, 0.05)
    assert isinstance(frame, np.ndarray) and frame.size == FRAME_SAMPLES
    while playback.next_frame() is not None:
        pass  # take what is due now: the next frame is paced ~20 ms out
    speaker = asyncio.create_task(playback.next_out(idle=10))
    await asyncio.sleep(0.005)
    stopped = playback.interrupt()
    assert await asyncio.wait_for(speaker, 0.01) is Cue.FLUSH  # not after the paced wait
    assert stopped is not None and stopped.item_id == "item_a"
    tail = []
    while (out := await playback.next_out(idle=0.01)) is not None:
        tail.append(out)
    # The rest was dropped: only a short silence follows, so a receiver's jitter buffer lets go of the last speech.
    assert 1 <= len(tail) <= 6 and not np.any(tail)


async def test_an_idle_speaker_waits_without_waking():
    playback = Playback()
    started = asyncio.get_running_loop().time()
    assert await playback.next_out(idle=0.2) is None
    assert asyncio.get_running_loop().time() - started >= 0.19


async def test_a_reply_is_followed_by_a_short_silence_then_nothing():
    playback = Playback(lead_ms=200)  # everything due at once
    playback.add("item_a", np.ones(FRAME_SAMPLES * 3, np.int16))
    playback.finish("item_a")
    sent = []
    while (out := await playback.next_out(idle=0.05)) is not None:
        sent.append(out)
    assert [bool(frame.any()) for frame in sent] == [True] * 3 + [False] * TAIL_FRAMES


def test_a_late_speaker_catches_up_and_what_was_heard_counts_the_catch_up():
    # fastrtc sends frames that are late at once instead of shifting its clock; "heard" must count them.
    clock = FakeClock()
    playback = Playback(lead_ms=60, clock=clock)
    playback.add("item_a", np.ones(FRAME_SAMPLES * 50, np.int16))
    while playback.next_frame() is not None:
        pass
    clock.now += 0.15  # the event loop stalled for 150 ms
    while playback.next_frame() is not None:
        pass
    stopped = playback.interrupt()
    assert stopped is not None and stopped.played_ms == 150
