"""One conversation with the Realtime service, shared by voice and text, independent of the UI.

It owns the connection (and reconnects it), the transcript, the response gate, the tool runner
and the assistant's audio playback; UIs read `snapshot()` whenever `updates()` says it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from audio import Playback, decode_pcm16, encode_pcm16
from conversation.calls import FunctionCalls, Turn
from conversation.gate import ResponseGate
from conversation.tool_runner import ToolCall
from conversation.transcript import Item, Transcript, is_hallucination
from realtime import dialect
from realtime.connection import ConnectError, RealtimeConnection
from realtime.dialect import Event
from settings import RealtimeSettings, missing_settings
from tools import ToolRegistry, registry

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1, 2, 4, 8)


@dataclass(frozen=True)
class Snapshot:
    messages: list[dict[str, str]]
    calls: list[ToolCall]
    status: str
    notice: str


class Conversation:
    def __init__(
        self, settings: RealtimeSettings, tools: ToolRegistry = registry, debug: bool = False
    ) -> None:
        self.settings = settings
        self._connection = RealtimeConnection(settings, debug)
        self.transcript = Transcript()
        self.gate = ResponseGate(self._send)
        self.turns: dict[str, Turn] = {}
        self.calls = FunctionCalls(tools, self.transcript, self.turns, self._send, self._request_for, self._changed)
        self.tools = self.calls.runner
        self._tool_schemas = tools.schemas()
        self.playback = Playback()
        self.voice_attached = False
        self.interruptions = 0  # bumps on every barge-in so the audio handler can flush fastrtc
        self._interrupted_items: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._subscribers: set[asyncio.Event] = set()
        self._connected = asyncio.Event()
        self._gave_up = asyncio.Event()  # set when connecting cannot succeed (missing settings, wrong key)
        self._closed = False
        self.status = "接続していません"
        self.notice = ""
        self.last_activity = time.monotonic()
        self._handlers = {
            "session.created": self._on_session_created,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "conversation.item.added": self._on_item_added,
            "conversation.item.input_audio_transcription.completed": self._on_user_transcript,
            "conversation.item.input_audio_transcription.failed": self._on_user_transcript_failed,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item_added,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_text_delta,
            "response.output_text.delta": self._on_text_delta,
            "response.output_item.done": self._on_output_item_done,
            "response.done": self._on_response_done,
            "error": self._on_error,
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks or self._closed:
            return
        missing = missing_settings(self.settings)
        if missing:
            self.status = "未設定"
            self.notice = f"Realtime API の設定が足りません: {', '.join(missing)} を .env に設定してください。"
            self._gave_up.set()
            return
        self._tasks = [
            asyncio.create_task(self._run(), name="realtime session"),
            asyncio.create_task(self.gate.run(), name="response gate"),
        ]

    async def close(self) -> None:
        """End the conversation: cancel running tools and tasks, close the connection."""
        if self._closed:
            return
        self._closed = True
        await self.calls.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._connection.close()
        for turn in self.turns.values():
            turn.done.set()
        self.status = "終了しました"
        self._changed()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def gave_up(self) -> bool:
        return self._gave_up.is_set()

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected; False after `timeout` or as soon as connecting cannot succeed."""
        waits = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(self._gave_up.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        return self._connected.is_set()

    async def _run(self) -> None:
        """Connect, serve events, and reconnect after drops (with backoff) until closed or refused."""
        failures = 0
        while not self._closed:
            self.status = "接続中…"
            self._changed()
            was_up = False
            try:
                await self._connection.open()
                await self._configure(replay=bool(self.transcript.items))
                was_up, failures = True, 0
                async for event in self._connection.events():
                    await self._dispatch(event)
            except ConnectError as exc:
                self.status, self.notice = "接続エラー", str(exc)
                if not exc.retry:  # a wrong key or URL will not fix itself
                    self._gave_up.set()
                    self._changed()
                    return
            except Exception:  # a socket dropped mid-send or similar: recover like any other drop
                log.warning("realtime connection failed", exc_info=True)
            finally:
                self._connected.clear()
                self.gate.disconnected()
                await self._connection.close()
            if self._closed:
                return
            if was_up:
                self.status = "再接続中…"
                self.notice = "接続が切れたため再接続しています（会話の内容は引き継がれます）。"
            self._changed()
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
            failures += 1

    async def _configure(self, replay: bool) -> None:
        """A new connection is a blank session: configure it first, then restore the conversation."""
        d = self.settings.dialect
        await self._send(dialect.session_update(self.settings.voice, self._tool_schemas, d))
        if replay:
            for item in self.transcript.replay(d):
                await self._send(dialect.create_item(item))
            self.notice = "再接続しました。会話の内容を引き継いでいます。"
        self.status = f"接続済み: {self.settings.label}"
        self._connected.set()
        self.gate.connected()
        self._changed()

    async def _send(self, event: Event) -> None:
        await self._connection.send(event)

    # ---- what the UI and the audio handler call ----------------------------------------------

    async def send_text(self, text: str) -> Turn:
        """Add a typed message and ask for an answer; the returned turn tracks everything it caused."""
        self.last_activity = time.monotonic()
        for finished in [t for t, turn in self.turns.items() if turn.done.is_set()]:
            del self.turns[finished]
        turn = Turn(f"turn_{uuid.uuid4().hex[:12]}")
        self.turns[turn.turn_id] = turn
        item_id = f"msg_{uuid.uuid4().hex[:20]}"
        self.transcript.add(Item(item_id, "message", "user", text))
        self._changed()
        if self.gave_up or self._closed:
            turn.awaiting = False
            turn.done.set()
            return turn
        if self._connected.is_set():
            with contextlib.suppress(ConnectionError, OSError):
                await self._send(dialect.create_item({"id": item_id, **dialect.user_text_item(text)}))
        # While (re)connecting the message waits in the transcript; the replay after connecting sends it.
        self.gate.request({turn.turn_id})
        return turn

    async def append_audio(self, pcm: np.ndarray) -> None:
        """Forward 24 kHz PCM16 from the microphone (dropped while disconnected: it would be stale)."""
        if self._connected.is_set():
            self.last_activity = time.monotonic()
            with contextlib.suppress(ConnectionError):
                await self._send({"type": "input_audio_buffer.append", "audio": encode_pcm16(pcm)})

    def turn_text(self, turn: Turn) -> str:
        texts = [item.text for i in turn.item_ids if (item := self.transcript.get(i)) and item.text]
        return "\n".join(texts)

    def snapshot(self) -> Snapshot:
        calls = sorted(self.tools.calls.values(), key=lambda c: c.started_at, reverse=True)
        return Snapshot(self.transcript.messages(), calls, self.status, self.notice)

    async def updates(self) -> AsyncIterator[Snapshot]:
        """Snapshots whenever something changed (coalesced); ticks each second while tools run."""
        changed = asyncio.Event()
        changed.set()
        self._subscribers.add(changed)
        try:
            while not self._closed:
                timeout = 1.0 if self.tools.running else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await changed.wait()
                changed.clear()
                yield self.snapshot()
            yield self.snapshot()
        finally:
            self._subscribers.discard(changed)

    def _changed(self) -> None:
        for event in self._subscribers:
            event.set()

    # ---- server events -----------------------------------------------------------------------

    async def _dispatch(self, event: Event) -> None:
        handler = self._handlers.get(event.get("type", ""))
        if handler is None:
            return
        try:
            await handler(event)
        except Exception:  # one malformed event must not end the conversation
            log.exception("failed to handle %s", event.get("type"))

    async def _on_session_created(self, event: Event) -> None:
        log.debug("service session %s", event.get("session", {}).get("id"))

    async def _on_speech_started(self, event: Event) -> None:
        self.gate.on_speech_started()
        stopped = self.playback.interrupt()
        self.interruptions += 1
        if stopped is None:
            return
        self._interrupted_items.add(stopped.item_id)
        item = self.transcript.get(stopped.item_id)
        if item is not None:
            item.interrupted = True
        heard = min(stopped.played_ms, stopped.received_ms)
        # The model's memory of its answer must end where the user stopped hearing it.
        if heard > 0:
            await self._send(dialect.truncate(stopped.item_id, heard))
        else:
            await self._send(dialect.delete_item(stopped.item_id))
            self.transcript.remove(stopped.item_id)
        self._changed()

    async def _on_speech_stopped(self, event: Event) -> None:
        self.gate.on_speech_stopped()

    async def _on_item_added(self, event: Event) -> None:
        raw = event.get("item", {})
        item_id, kind = raw.get("id", ""), raw.get("type")
        if kind == "message" and raw.get("role") in ("user", "assistant"):
            voice = any(part.get("type") == "input_audio" for part in raw.get("content", []))
            text = "".join(part.get("text") or part.get("transcript") or "" for part in raw.get("content", []))
            self.transcript.add(Item(item_id, "message", raw["role"], text, pending=voice and not text),
                                event.get("previous_item_id"))
            self._changed()
        elif kind == "function_call":
            self.transcript.add(Item(item_id, "function_call", call_id=raw.get("call_id", ""),
                                     name=raw.get("name", ""), arguments=raw.get("arguments", "")),
                                event.get("previous_item_id"))

    async def _on_user_transcript(self, event: Event) -> None:
        item = self.transcript.get(event.get("item_id", ""))
        text = (event.get("transcript") or "").strip()
        if item is None:
            return
        if is_hallucination(text):
            self.transcript.remove(item.item_id)
        else:
            item.text, item.pending = text, False
        self._changed()

    async def _on_user_transcript_failed(self, event: Event) -> None:
        item = self.transcript.get(event.get("item_id", ""))
        if item is not None:
            item.text, item.pending = "（音声を文字にできませんでした）", False
            self._changed()

    async def _on_response_created(self, event: Event) -> None:
        response = event.get("response", {})
        response_id = response.get("id", "")
        for turn_id in self.gate.on_response_created(response_id, response.get("metadata")):
            if turn := self.turns.get(turn_id):
                turn.awaiting = False
                turn.responses.add(response_id)

    def _turns_of(self, response_id: str) -> list[Turn]:
        causes = self.gate.causes_of.get(response_id, set())
        return [t for turn_id in causes if (t := self.turns.get(turn_id))]

    async def _on_output_item_added(self, event: Event) -> None:
        raw = event.get("item", {})
        if raw.get("type") == "message":
            self.transcript.add(Item(raw.get("id", ""), "message", "assistant"))
            for turn in self._turns_of(event.get("response_id", "")):
                turn.item_ids.append(raw.get("id", ""))

    async def _on_audio_delta(self, event: Event) -> None:
        item_id = event.get("item_id", "")
        if self.voice_attached and item_id not in self._interrupted_items:
            self.playback.add(item_id, decode_pcm16(event.get("delta", "")))

    async def _on_audio_done(self, event: Event) -> None:
        self.playback.finish(event.get("item_id", ""))

    async def _on_text_delta(self, event: Event) -> None:
        item = self.transcript.get(event.get("item_id", ""))
        if item is not None:
            item.text += event.get("delta", "")
            self._changed()

    async def _on_output_item_done(self, event: Event) -> None:
        raw = event.get("item", {})
        if raw.get("type") == "message":
            item = self.transcript.get(raw.get("id", ""))
            final = "".join(p.get("transcript") or p.get("text") or "" for p in raw.get("content", []))
            if item is not None and final and not item.interrupted:
                item.text = final
            return
        if raw.get("type") != "function_call":
            return
        await self.calls.on_item_done(raw, self._turns_of(event.get("response_id", "")))

    def _request_for(self, causes: set[str], tools_allowed: bool) -> None:
        """Ask the gate for a response on behalf of these turns (they are open until it is done)."""
        for turn_id in causes:
            if turn := self.turns.get(turn_id):
                turn.awaiting = True
        self.gate.request(causes, tools_allowed=tools_allowed)

    async def _on_response_done(self, event: Event) -> None:
        response = event.get("response", {})
        response_id = response.get("id", "")
        # Calls of a cancelled response may never get output_item.done: close each with an output.
        for raw in response.get("output", []):
            if raw.get("type") == "function_call" and not self.calls.known(raw.get("call_id", "")):
                await self.calls.on_item_done({**raw, "status": raw.get("status") or "incomplete"},
                                              self._turns_of(response_id))
        self.gate.on_response_done(response_id)
        for turn in self._turns_of(response_id):
            turn.responses.discard(response_id)
            turn.settle()
        self.gate.causes_of.pop(response_id, None)
        self._changed()

    async def _on_error(self, event: Event) -> None:
        error = event.get("error", {})
        code = error.get("code") or ""
        if code == "conversation_already_has_active_response":
            self.gate.on_active_response_error()
            return
        log.warning("realtime error %s: %s", code, error.get("message"))
        if code not in ("response_cancel_not_active",) and "truncat" not in (error.get("message") or "").lower():
            self.notice = f"サービスからのエラー: {error.get('message') or code}"
            self._changed()
