"""The FastRTC stream handler: microphone frames in, the assistant's voice out. Deliberately thin.

Which conversation a call speaks to is the registry's business (web/browsers.py): it tells the handler
(`follow`) when the call is placed in a browser session and whenever that session's conversation is replaced.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable

import gradio as gr
import gradio.routes
import numpy as np
from fastrtc import AsyncStreamHandler, WebRTC, get_current_context
from fastrtc import Warning as show_warning
from fastrtc.utils import create_message

from audio import SAMPLE_RATE, Cue, Playback, to_realtime_pcm
from conversation.conversation import Conversation
from web.browsers import BrowserSessions, VoiceCall

log = logging.getLogger(__name__)

IDLE_EMIT_SECONDS = 30.0  # emit returns None now and then: fastrtc warns when it waits 60 s for a frame
ERROR_PAUSE_SECONDS = 0.05
# A browser sends microphone packets all through a call (silence included): none for this long means the caller
# vanished (lid closed, network gone). WebRTC itself notices only after its ~30 s consent timeout.
MEDIA_TIMEOUT_SECONDS = 10.0
TIME_LIMIT_NOTICE = ("音声会話の上限時間（{minutes}分）に達したため終了しました。"
                     "続けるにはもう一度録音を開始してください。")
REFUSAL_GRACE_SECONDS = 1.0  # a refused page hangs up by itself on `end_stream`; after this the server does
# The microphone is heard from the first packet, but the call is placed only when the page's tick arrives (a
# busy server: seconds later). The latest this much of what the caller said meanwhile is sent once the call's
# conversation is connected.
EARLY_AUDIO_SECONDS = 3.0

HangUp = Callable[[str, float], None]  # (webrtc_id, seconds to let the peer hang up first)


class VoiceHandler(AsyncStreamHandler):
    """One per WebRTC connection; the conversation itself is the browser session's current Conversation."""

    def __init__(self, registry: BrowserSessions, max_voice_calls: int = 4,
                 media_timeout: float = MEDIA_TIMEOUT_SECONDS, time_limit: float = math.inf,
                 hang_up: HangUp = lambda _id, _grace: None) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE)
        self.registry = registry
        self.max_voice_calls = max_voice_calls
        self.media_timeout = media_timeout
        self.time_limit = time_limit
        self.conversation: Conversation | None = None
        self._hang_up = hang_up
        self._webrtc_id = ""
        self._call: VoiceCall | None = None
        self._followed = asyncio.Event()  # the registry handed over a conversation (or the call was refused)
        self._playing: Playback | None = None  # the playback emit drains (the conversation's, or the last one's)
        self._start_up: asyncio.Task | None = None
        self._heard_at = 0.0  # loop time of the last microphone frame
        self._early: deque[np.ndarray] = deque()  # microphone audio before the call could first be heard
        self._early_samples = 0
        self._early_done = False  # delivered (or refused): from then on nothing is kept
        self._watchdog: asyncio.Task | None = None

    def copy(self) -> VoiceHandler:
        return VoiceHandler(self.registry, self.max_voice_calls, self.media_timeout, self.time_limit, self._hang_up)

    async def start_up(self) -> None:
        self._start_up = asyncio.current_task()  # fastrtc never cancels it: shutdown does
        self._webrtc_id = get_current_context().webrtc_id
        call = self._call = self.registry.open_call(self._webrtc_id, self.follow, self.max_voice_calls,
                                                    hang_up=lambda: self._hang_up(self._webrtc_id, 0.0))
        await self.fetch_args()  # the page answers with its tick events; one of them places the call (web/page.py)
        if not await call.placed:
            await self._refuse()
            return
        self._heard_at = asyncio.get_running_loop().time()
        self._watchdog = asyncio.create_task(self._watch(), name="voice call watchdog")

    async def _refuse(self) -> None:
        """Each voice call spends the owner's quota: refuse politely (fastrtc's own limit says it in English).

        Not with fastrtc's CloseStream: it stops the outgoing track under the running RTP sender, whose next
        frame is then None (an aiortc traceback per refused call). The page is told as CloseStream would
        (`end_stream`: it stops the call), and the peer connection is closed, senders first.
        """
        log.info("refused a voice call: %d voice calls are already up (MAX_VOICE_SESSIONS)", self.max_voice_calls)
        refusal = (f"音声会話の同時接続数が上限（{self.max_voice_calls}）に達しています。"
                   "しばらくしてから再度お試しください。テキスト入力は引き続き使えます。")
        show_warning(refusal)
        await self.send_message(create_message("end_stream", refusal))
        self._early_done = True  # nothing said on a refused call is kept
        self._early.clear()
        self._followed.set()
        self._hang_up(self._webrtc_id, REFUSAL_GRACE_SECONDS)

    async def _watch(self) -> None:
        """End the call once no microphone frame has come for `media_timeout` seconds (the caller vanished),
        or at its time limit. The limit is kept here, not by fastrtc's `time_limit`: that one is a task per call
        that sleeps the whole limit even after the call ended, holding the call's peer connection."""
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.time_limit
        while (quiet := loop.time() - self._heard_at) < self.media_timeout and loop.time() < ends_at:
            await asyncio.sleep(min(self.media_timeout - quiet, ends_at - loop.time()))
        if quiet >= self.media_timeout:
            log.info("ending a voice call: no microphone audio for %.0f s (the caller is gone)", quiet)
        else:
            log.info("ending a voice call at its time limit (%.0f s)", self.time_limit)
            await self.send_message(create_message("end_stream", TIME_LIMIT_NOTICE.format(
                minutes=f"{self.time_limit / 60:g}")))
        call, self._call = self._call, None  # ended once: the hang-up's shutdown finds nothing left to end
        if call is not None:
            self.registry.end_call(call)  # the slot is free now, whatever the peer connection does
        self._hang_up(self._webrtc_id, 0.0)

    def follow(self, conversation: Conversation | None) -> None:
        """The registry's word: from now on the call speaks to `conversation` (None: to nobody)."""
        self.conversation = conversation
        playing = self._playing
        if playing is not None and (conversation is None or conversation.playback is not playing):
            playing.interrupt()  # the old voice stops now; emit wakes on it (FLUSH) and moves on
        self._followed.set()

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        self._heard_at = asyncio.get_running_loop().time()
        conversation = self.conversation
        try:
            sample_rate, audio = frame
            pcm = to_realtime_pcm(sample_rate, audio)
            if not self._early_done:
                if conversation is None or not conversation.connected:
                    self._keep_early(pcm)
                    return
                self._early_done = True
                pcm = np.concatenate([*self._early, pcm])  # one append: what was said first, then this frame
                self._early.clear()
            if conversation is not None:
                await conversation.append_audio(pcm)
        except Exception:  # an exception escaping receive ends the microphone for the whole call
            log.exception("dropping a microphone frame")

    def _keep_early(self, pcm: np.ndarray) -> None:
        """The latest EARLY_AUDIO_SECONDS before the call can first be heard (contiguous with what follows)."""
        self._early.append(pcm)
        self._early_samples += pcm.size
        while self._early_samples > EARLY_AUDIO_SECONDS * SAMPLE_RATE:
            self._early_samples -= self._early.popleft().size

    async def emit(self) -> tuple[int, np.ndarray] | None:
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
        for task in (self._start_up, self._watchdog):
            if task is not None and not task.done():
                task.cancel()
        call, self._call = self._call, None
        if call is not None:
            self.registry.end_call(call)  # the voice slot is free whatever conversation the call ended in
        self.follow(None)


def wire_voice(voice: WebRTC, registry: BrowserSessions, max_voice_calls: int, time_limit: float,
               media_timeout: float = MEDIA_TIMEOUT_SECONDS) -> None:
    """Stream the component through a VoiceHandler; its tick event tells the registry whose call it is.

    fastrtc's offer carries no Gradio session, but the tick event that fastrtc has the page run when a
    call starts does: the session hash is read from that request on the server, never sent to the page.
    """
    hanging_up: set[asyncio.Task] = set()

    async def close_peer(webrtc_id: str, grace: float) -> None:
        await asyncio.sleep(grace)
        if (pc := voice.pcs.get(webrtc_id)) is not None:
            await pc.close()  # fastrtc then cleans up and the handler's shutdown runs

    def hang_up(webrtc_id: str, grace: float) -> None:
        task = asyncio.create_task(close_peer(webrtc_id, grace), name="voice hang-up")
        hanging_up.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(hanging_up.discard)

    async def place_call(webrtc_id: str, request: gr.Request) -> None:
        registry.place_call(webrtc_id, request.session_hash or "")

    quiet_offer_print()
    # One connection above our own limit, so the next caller hears why (in Japanese) instead of fastrtc's text;
    # the time limit is the handler's (fastrtc's would keep a task per call sleeping for the whole limit).
    voice.stream(VoiceHandler(registry, max_voice_calls, media_timeout, time_limit, hang_up), inputs=[voice],
                 outputs=[voice], concurrency_limit=max_voice_calls + 1, time_limit=None)
    voice.tick(place_call, inputs=[voice], outputs=None, concurrency_limit=None, show_progress="hidden")


def _print_but_content_type(*args: object, **kwargs: object) -> None:
    if len(args) == 2 and args[0] == "content_type" and not kwargs:
        return
    builtins.print(*args, **kwargs)  # type: ignore[call-overload]


def quiet_offer_print() -> None:
    """Gradio 5.50 prints `content_type <type>` to stdout for every component-server request, so for every
    WebRTC offer: a debug line left in `gradio.routes` (gradio-app/gradio#12030). It is a print, not a log
    record, so no logging filter can catch it: that module alone gets a `print` that drops exactly this call."""
    gradio.routes.print = _print_but_content_type  # type: ignore[attr-defined]
