"""The FastRTC stream handler: microphone frames in, the assistant's voice out. Deliberately thin."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastrtc import AsyncStreamHandler, CloseStream
from fastrtc import Warning as show_warning

from audio import SAMPLE_RATE, to_realtime_pcm
from conversation.conversation import Conversation
from web.browsers import BrowserSessions

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.01
IDLE_WAKE_SECONDS = 0.05


class VoiceHandler(AsyncStreamHandler):
    """One per WebRTC connection; the conversation itself lives in the browser session's Conversation."""

    def __init__(self, registry: BrowserSessions, max_voice_sessions: int = 4) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE)
        self.registry = registry
        self.max_voice_sessions = max_voice_sessions
        self._refusal = ""
        self.session: Conversation | None = None
        self._interruptions_seen = 0
        self._start_up: asyncio.Task | None = None

    def copy(self) -> VoiceHandler:
        return VoiceHandler(self.registry, self.max_voice_sessions)

    async def start_up(self) -> None:
        self._start_up = asyncio.current_task()  # fastrtc never cancels it: shutdown does
        await self.wait_for_args()
        session_hash = self.latest_args[-1] if len(self.latest_args) > 1 else ""
        if not session_hash:
            log.warning("voice stream started without a session hash")
            return
        if self.registry.voice_sessions >= self.max_voice_sessions:
            # Each voice session spends the owner's quota: refuse politely (fastrtc's own limit says it in English).
            self._refusal = (f"音声会話の同時接続数が上限（{self.max_voice_sessions}）に達しています。"
                             "しばらくしてから再度お試しください。テキスト入力は引き続き使えます。")
            show_warning(self._refusal)
            return
        session = self.registry.get(str(session_hash))
        session.voice_attached = True
        self._interruptions_seen = session.interruptions
        self.session = session

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        if self.session is None:
            return
        try:
            sample_rate, audio = frame
            await self.session.append_audio(to_realtime_pcm(sample_rate, audio))
        except Exception:  # an exception escaping receive ends the microphone for the whole call
            log.exception("dropping a microphone frame")

    async def emit(self) -> tuple[int, np.ndarray] | CloseStream | None:
        if self._refusal:
            refusal, self._refusal = self._refusal, ""
            return CloseStream(refusal)
        try:
            session = self.session
            if session is None:
                await asyncio.sleep(IDLE_POLL_SECONDS)
                return None
            if session.interruptions != self._interruptions_seen:
                # Barge-in: drop what fastrtc already decoded too, not only our own queue.
                self._interruptions_seen = session.interruptions
                if self._clear_queue is not None:
                    self.clear_queue()
            frame = session.playback.next_frame()
            if frame is None:
                wait = session.playback.wait_time()
                if wait > 0:  # paced: the next frame is due in `wait` seconds
                    await asyncio.sleep(wait)
                else:  # nothing queued: sleep until audio arrives (checking for barge-in now and then)
                    await session.playback.wait_for_audio(IDLE_WAKE_SECONDS)
                return None
            await asyncio.sleep(0)
            return SAMPLE_RATE, frame.reshape(1, -1)
        except Exception:  # an exception escaping emit silences the call for good
            log.exception("emit failed")
            await asyncio.sleep(IDLE_POLL_SECONDS)
            return None

    async def shutdown(self) -> None:
        if self._start_up is not None and not self._start_up.done():
            self._start_up.cancel()
        session, self.session = self.session, None
        if session is not None:
            session.voice_attached = False
            session.playback.interrupt()
