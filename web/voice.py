"""The FastRTC stream handler: microphone frames in, the assistant's voice out. Deliberately thin.

Which conversation a call speaks to is the registry's business (web/browsers.py): it tells the handler
(`follow`) when the call is placed in a browser session and whenever that session's conversation is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import gradio as gr
import numpy as np
from fastrtc import AsyncStreamHandler, CloseStream, WebRTC, get_current_context
from fastrtc import Warning as show_warning

from audio import SAMPLE_RATE, Cue, Playback, to_realtime_pcm
from conversation.conversation import Conversation
from web.browsers import BrowserSessions, VoiceCall

log = logging.getLogger(__name__)

IDLE_EMIT_SECONDS = 30.0  # emit returns None now and then: fastrtc warns when it waits 60 s for a frame
ERROR_PAUSE_SECONDS = 0.05


class VoiceHandler(AsyncStreamHandler):
    """One per WebRTC connection; the conversation itself is the browser session's current Conversation."""

    def __init__(self, registry: BrowserSessions, max_voice_calls: int = 4) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE)
        self.registry = registry
        self.max_voice_calls = max_voice_calls
        self.conversation: Conversation | None = None
        self._call: VoiceCall | None = None
        self._followed = asyncio.Event()  # the registry handed over a conversation (or the call was refused)
        self._playing: Playback | None = None  # the playback emit drains (the conversation's, or the last one's)
        self._refusal = ""
        self._start_up: asyncio.Task | None = None

    def copy(self) -> VoiceHandler:
        return VoiceHandler(self.registry, self.max_voice_calls)

    async def start_up(self) -> None:
        self._start_up = asyncio.current_task()  # fastrtc never cancels it: shutdown does
        call = self._call = self.registry.open_call(get_current_context().webrtc_id, self.follow,
                                                    self.max_voice_calls)
        await self.fetch_args()  # the page answers with its tick events; one of them places the call (web/page.py)
        if not await call.placed:
            # Each voice call spends the owner's quota: refuse politely (fastrtc's own limit says it in English).
            self._refusal = (f"音声会話の同時接続数が上限（{self.max_voice_calls}）に達しています。"
                             "しばらくしてから再度お試しください。テキスト入力は引き続き使えます。")
            show_warning(self._refusal)
            self._followed.set()

    def follow(self, conversation: Conversation | None) -> None:
        """The registry's word: from now on the call speaks to `conversation` (None: to nobody)."""
        self.conversation = conversation
        playing = self._playing
        if playing is not None and (conversation is None or conversation.playback is not playing):
            playing.interrupt()  # the old voice stops now; emit wakes on it (FLUSH) and moves on
        self._followed.set()

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        conversation = self.conversation
        if conversation is None:
            return
        try:
            sample_rate, audio = frame
            await conversation.append_audio(to_realtime_pcm(sample_rate, audio))
        except Exception:  # an exception escaping receive ends the microphone for the whole call
            log.exception("dropping a microphone frame")

    async def emit(self) -> tuple[int, np.ndarray] | CloseStream | None:
        if self._refusal:
            refusal, self._refusal = self._refusal, ""
            return CloseStream(refusal)
        try:
            conversation = self.conversation
            if conversation is not None and conversation.playback is not self._playing:
                if self._playing is not None:  # the call moved on: the outgoing stream goes on, tail and all
                    conversation.playback.take_over(self._playing)
                self._playing = conversation.playback
            if self._playing is None:  # not placed yet: sleep until told
                self._followed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_EMIT_SECONDS):
                        await self._followed.wait()
                return None
            out = await self._playing.next_out(IDLE_EMIT_SECONDS)
            if out is Cue.FLUSH:  # barge-in or a new conversation: what fastrtc already decoded is stale too
                if self._clear_queue is not None:
                    self.clear_queue()
                return None
            return None if out is None else (SAMPLE_RATE, out.reshape(1, -1))
        except Exception:  # an exception escaping emit silences the call for good
            log.exception("emit failed")
            await asyncio.sleep(ERROR_PAUSE_SECONDS)
            return None

    async def shutdown(self) -> None:
        if self._start_up is not None and not self._start_up.done():
            self._start_up.cancel()
        call, self._call = self._call, None
        if call is not None:
            self.registry.end_call(call)  # the voice slot is free whatever conversation the call ended in
        self.follow(None)


def wire_voice(voice: WebRTC, registry: BrowserSessions, max_voice_calls: int, time_limit: float) -> None:
    """Stream the component through a VoiceHandler; its tick event tells the registry whose call it is.

    fastrtc's offer carries no Gradio session, but the tick event that fastrtc has the page run when a
    call starts does: the session hash is read from that request on the server, never sent to the page.
    """

    async def place_call(webrtc_id: str, request: gr.Request) -> None:
        registry.place_call(webrtc_id, request.session_hash or "")

    # One connection above our own limit, so the next caller hears why (in Japanese) instead of fastrtc's text.
    voice.stream(VoiceHandler(registry, max_voice_calls), inputs=[voice], outputs=[voice],
                 concurrency_limit=max_voice_calls + 1, time_limit=time_limit)
    voice.tick(place_call, inputs=[voice], outputs=None, concurrency_limit=None, show_progress="hidden")
