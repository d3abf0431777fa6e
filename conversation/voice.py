"""The conversation's voice: microphone audio to the service, the assistant's audio to whoever
listens, and barge-in (the model's memory of an interrupted answer ends where the user stopped
hearing it)."""

from __future__ import annotations

import contextlib

import numpy as np

from audio import Playback, encode_pcm16
from conversation.outbox import Outbox
from conversation.transcript import Transcript
from realtime import dialect

# Microphone chunks kept while moving to a fresh service session (~2 s), so nothing said is lost.
HELD_AUDIO_LIMIT = 50


class VoiceChannel:
    def __init__(self, transcript: Transcript, outbox: Outbox) -> None:
        self._transcript, self._send = transcript, outbox.send
        self.playback = Playback()
        self.attached = False  # a voice call listens (set by the registry of browser sessions)
        self.interruptions = 0  # barge-ins so far (the speaker learns of each from `playback.next_out`)
        self._interrupted_items: set[str] = set()
        self._held: list[str] = []

    async def microphone(self, pcm: np.ndarray, up: bool, moving: bool) -> None:
        """Forward 24 kHz PCM16; held while moving to a fresh session, dropped while disconnected (stale)."""
        chunk = encode_pcm16(pcm)
        if up:
            with contextlib.suppress(ConnectionError):
                await self._send(dialect.append_audio(chunk))
        elif moving and len(self._held) < HELD_AUDIO_LIMIT:
            self._held.append(chunk)

    async def send_held(self) -> None:
        while self._held:  # what comes in while these go out is held too, and goes next
            held, self._held = self._held, []
            for chunk in held:
                await self._send(dialect.append_audio(chunk))

    async def barge_in(self) -> bool:
        """The user started speaking: stop the answer being played and make the model forget the rest."""
        stopped = self.playback.interrupt()
        self.interruptions += 1
        if stopped is None:
            return False
        self._interrupted_items.add(stopped.item_id)
        item = self._transcript.get(stopped.item_id)
        if item is not None:
            item.interrupted = True
        heard = min(stopped.played_ms, stopped.received_ms)
        if heard > 0:
            await self._send(dialect.truncate(stopped.item_id, heard))
        else:
            await self._send(dialect.delete_item(stopped.item_id))
            self._transcript.remove(stopped.item_id)
        return True

    def answer_audio(self, item_id: str, pcm: np.ndarray) -> None:
        if self.attached and item_id not in self._interrupted_items:
            self.playback.add(item_id, pcm)

    def answer_audio_done(self, item_id: str) -> None:
        self.playback.finish(item_id)
