"""Audio conversions between WebRTC frames, the Realtime API's PCM16 and paced playback."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np
import soxr

SAMPLE_RATE = 24_000  # the Realtime API's PCM16 rate, in and out
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


def to_mono_int16(audio: np.ndarray) -> np.ndarray:
    """Any fastrtc/numpy layout ((N,), (1, N), (N, 1), (C, N)) and dtype → 1-D int16."""
    data = np.asarray(audio)
    if data.ndim == 2:
        # fastrtc gives (channels, samples); a few callers give (samples, channels). A single channel is
        # only reshaped (the 25-50 frames/s path); several are mixed in their own dtype, so int16 stays
        # in int16 units and is never mistaken for normalised float audio.
        axis = 0 if data.shape[0] <= data.shape[1] else 1
        data = data.reshape(-1) if data.shape[axis] == 1 else data.mean(axis=axis).astype(data.dtype)
    data = data.reshape(-1)
    if data.dtype == np.int16:
        return data
    if np.issubdtype(data.dtype, np.floating):
        scale = 32767.0 if np.abs(data).max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.round(data * scale), -32768, 32767).astype(np.int16)
    return np.clip(data, -32768, 32767).astype(np.int16)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of mono audio (soxr), int16 or float in, the same dtype out.

    Linear interpolation folds everything above the new Nyquist back into the speech band; soxr
    filters it out first. Each call is independent (a 20 ms WebRTC frame is resampled on its own:
    the frame edges cost about -56 dB of error, far below the microphone's noise).
    """
    if from_rate == to_rate or audio.size == 0:
        return audio
    data = audio if audio.dtype in (np.int16, np.float32, np.float64) else audio.astype(np.float32)
    return soxr.resample(data, from_rate, to_rate, quality="HQ")


def to_realtime_pcm(sample_rate: int, audio: np.ndarray) -> np.ndarray:
    """A received WebRTC frame → 24 kHz mono int16 for `input_audio_buffer.append`."""
    return resample(to_mono_int16(audio), sample_rate, SAMPLE_RATE)


def encode_pcm16(pcm: np.ndarray) -> str:
    return base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")


def decode_pcm16(payload: str, strict: bool = False) -> np.ndarray:
    """`strict`: a payload that is not base64 raises ValueError instead of decoding what it can."""
    return np.frombuffer(base64.b64decode(payload, validate=strict), dtype="<i2").astype(np.int16)


def pcm_ms(samples: int, rate: int = SAMPLE_RATE) -> int:
    return samples * 1000 // rate


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


@dataclass(frozen=True)
class Interruption:
    """What barge-in stopped: the assistant item and how much of it the user actually heard."""

    item_id: str
    played_ms: int
    received_ms: int


class Cue(Enum):
    """What the speaker must do besides playing a frame."""

    FLUSH = "flush"  # barge-in: drop whatever is already on its way downstream (fastrtc's queue)


SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
# After speech, 120 ms of silence: a receiver that releases a packet only when later ones arrive (aiortc's
# jitter buffer holds 4) would otherwise keep the end of one reply and play it before the next.
TAIL_FRAMES = 6
# fastrtc sends each frame at its timestamp and restarts that clock only after 10 frame-times without a
# frame: late frames go out at once to catch up. Our clock does the same, so "heard" matches what was sent.
RESTART_AFTER = 10 * FRAME_MS / 1000


class Playback:
    """The assistant's audio on its way to the speaker, paced at real time.

    fastrtc decodes whatever `emit` returns into an unbounded queue at once, so without pacing
    we could not know what was heard when the user interrupts. We release 20 ms frames no more
    than `lead_ms` ahead of the outgoing stream's clock, which bounds what sits in fastrtc's queue.
    The speaker awaits `next_out`: speech, then a short silence tail, and `Cue.FLUSH` the moment
    the user interrupts.
    """

    def __init__(self, lead_ms: int = 60, clock=time.monotonic) -> None:
        self._frames: deque[tuple[str, np.ndarray]] = deque()
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_item = ""  # the item whose audio is still arriving (until `finish`)
        self._lead = lead_ms / 1000
        self._clock = clock
        self._playhead = 0.0  # when the last frame handed out (speech or silence) ends playing
        self._speech_end = 0.0  # when the last speech frame handed out ends playing
        self._tail = 0  # silence frames still owed after the last speech frame
        self._item = ""  # the item of the last speech frame handed out
        self._released_ms = 0
        self._received_ms: dict[str, int] = {}
        self._flush = False
        self._wake = asyncio.Event()  # audio arrived or an interruption happened

    async def next_out(self, idle: float) -> np.ndarray | Cue | None:
        """The next frame (speech, or the silence after it) once due; `Cue.FLUSH` right after an
        interruption; None after `idle` seconds with nothing to send."""
        while True:
            if self._flush:
                self._flush = False
                return Cue.FLUSH
            frame = self.next_frame()
            if frame is None:
                frame = self._next_silence()
            if frame is not None:
                return frame
            self._wake.clear()
            try:
                async with asyncio.timeout(self.wait_time() if self._frames or self._tail else idle):
                    await self._wake.wait()
            except TimeoutError:
                if not (self._frames or self._tail):
                    return None

    def take_over(self, previous: Playback) -> None:
        """Continue the outgoing stream another playback was feeding (the call moved to a new conversation)."""
        self._playhead = max(self._playhead, previous._playhead)
        self._tail, previous._tail = max(self._tail, previous._tail), 0

    def add(self, item_id: str, pcm: np.ndarray) -> None:
        """Queue a delta, cut into whole 20 ms frames (the remainder waits for the next delta)."""
        if item_id != self._pending_item:
            self._flush_pending()
            self._pending_item = item_id
        self._received_ms[item_id] = self._received_ms.get(item_id, 0) + pcm_ms(pcm.size)
        data = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        whole = data.size - data.size % FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            self._frames.append((item_id, data[start : start + FRAME_SAMPLES]))
        self._pending = data[whole:]
        self._wake.set()

    def finish(self, item_id: str) -> None:
        """The item's audio is complete: release its last partial frame, padded with silence."""
        if item_id == self._pending_item:
            self._flush_pending()
            self._pending_item = ""

    def _flush_pending(self) -> None:
        if self._pending.size:
            frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            frame[: self._pending.size] = self._pending
            self._frames.append((self._pending_item, frame))
            self._wake.set()
        self._pending = np.zeros(0, dtype=np.int16)

    def wait_time(self) -> float:
        """Seconds until the next frame may be released (0 when one is due now)."""
        return max(0.0, self._playhead - self._lead - self._clock())

    def _advance(self) -> None:
        now = self._clock()
        if now - (self._playhead - FRAME_MS / 1000) > RESTART_AFTER:  # since the last frame was sent
            self._playhead = now
        self._playhead += FRAME_MS / 1000

    def next_frame(self) -> np.ndarray | None:
        """The next speech frame if one is queued and due, else None."""
        if not self._frames or self.wait_time() > 0:
            return None
        item_id, frame = self._frames.popleft()
        if item_id != self._item:
            self._item, self._released_ms = item_id, 0
        self._advance()
        self._speech_end = self._playhead
        self._released_ms += FRAME_MS
        self._tail = TAIL_FRAMES
        return frame

    def _next_silence(self) -> np.ndarray | None:
        if not self._tail or self._frames or self.wait_time() > 0:
            return None
        self._tail -= 1
        self._advance()
        return SILENCE

    @property
    def busy(self) -> bool:
        return bool(self._frames) or self._pending.size > 0 or self._clock() < self._speech_end

    def interrupt(self) -> Interruption | None:
        """Drop everything not yet heard; say which item was cut and at how many ms (None: nothing was playing).

        The speaker learns of it from `next_out` (`Cue.FLUSH`), so frames already handed downstream go too.
        """
        now = self._clock()
        audible = self._item if now < self._speech_end else ""
        waiting = self._frames[0][0] if self._frames else self._pending_item  # received, not yet released
        item = audible or waiting
        unheard = max(0.0, self._speech_end - now)
        heard_ms = max(0, self._released_ms - round(unheard * 1000)) if item and item == self._item else 0
        stopped = Interruption(item, heard_ms, self._received_ms.get(item, 0)) if item else None
        self._received_ms.clear()
        self._frames.clear()
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_item = ""
        self._playhead = self._speech_end = now  # fastrtc's clock restarts too when its queue is cleared
        self._item, self._released_ms = "", 0
        if self._tail:  # speech went out recently: a receiver may still hold its last frames
            self._tail = TAIL_FRAMES
        self._flush = True
        self._wake.set()
        return stopped
