"""A local language model behind the offline engine: any Chat Completions server (Ollama, llama.cpp's
server, LM Studio, vLLM) through the `openai` SDK.

Its streamed text is spoken sentence by sentence; its streamed tool calls go out as Realtime function
calls, so the app's own runner and table run them (malformed arguments and unknown tools come back as
error outputs the model reads). When the server cannot be reached the user is told so once and the
rule-based assistant answers until the model is back.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from offline import replies
from offline.assistant import wordless_voice_reply
from offline.engine import Assistant, Call, ResponseContext, Say
from offline.streaming import is_voice, text_of
from speech_text import is_hallucination

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30.0  # after a failure the rules answer; the model is tried again after this
MAX_FAILED_CALLS = 3  # tool calls failing in a row: let the model answer in words instead of looping
_SENTENCE_END = re.compile(r"[。！？!?\n]|\.(?=\s)")
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)  # reasoning models' hidden thoughts


class ModelUnreachable(Exception):
    """The Chat Completions server refused, failed or dropped the connection."""


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Realtime `tools` entries → Chat Completions `tools`."""
    return [{"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
            for t in tools if t.get("type", "function") == "function" and t.get("name")]


def _json_or_empty(arguments: str) -> str:
    """Arguments as history: servers that parse them (Ollama) reject malformed JSON, so it becomes {}."""
    try:
        return arguments if isinstance(json.loads(arguments or "{}"), dict) else "{}"
    except ValueError:
        return "{}"


def chat_messages(context: ResponseContext) -> list[dict[str, Any]]:
    """The Realtime conversation as Chat Completions messages (each call followed by its output)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": context.instructions}] if context.instructions \
        else []
    outputs = {i.get("call_id"): i.get("output") for i in context.items if i.get("type") == "function_call_output"}
    for item in context.items:
        if item.get("type") == "message" and item.get("role") in ("user", "assistant", "system"):
            text = text_of(item)
            if text and not (is_voice(item) and is_hallucination(text)):
                messages.append({"role": item["role"], "content": text})
        elif item.get("type") == "function_call" and item.get("call_id") in outputs:
            # A call still running has no output yet: the model would reject it without one, so it waits.
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item.get("name", ""), "arguments": _json_or_empty(item.get("arguments"))}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": outputs[item["call_id"]]})
    return messages


def _failed_calls_in_a_row(items: list[dict[str, Any]]) -> int:
    count = 0
    for item in reversed([i for i in items if i.get("type") == "function_call_output"]):
        try:
            status = json.loads(item.get("output") or "{}").get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "failed":
            break
        count += 1
    return count


@dataclass
class _Reply:
    """One streamed completion, read first as sentences (while text comes) and then as tool calls."""

    chunks: AsyncIterator[Any]
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    text: str = ""  # raw text received so far
    spoken: int = 0  # how much of `text` went out as sentences
    finished: bool = False
    failure: Exception | None = None

    async def _read(self) -> bool:
        """Take one chunk; False when the stream is over (or broke: see `failure`)."""
        if self.finished:
            return False
        try:
            chunk = await anext(self.chunks)
        except StopAsyncIteration:
            self.finished = True
            return False
        except (openai.APIError, httpx.HTTPError, OSError) as exc:  # dropped mid-answer
            self.finished, self.failure = True, exc
            return False
        for choice in chunk.choices or []:
            delta = choice.delta
            if delta is None:
                continue
            self.text += delta.content or ""
            for fragment in delta.tool_calls or []:
                index = fragment.index if fragment.index is not None else len(self.calls)
                call = self.calls.setdefault(index, {"name": "", "arguments": ""})
                if fragment.function is not None:
                    call["name"] += fragment.function.name or ""
                    call["arguments"] += fragment.function.arguments or ""
        return True

    def speakable(self) -> str:
        """The text without a reasoning model's hidden thoughts."""
        return _THINK.sub("", self.text)

    async def wait_for_content(self) -> None:
        while not (self.speakable().strip() or self.calls) and await self._read():
            pass

    async def sentences(self) -> AsyncIterator[str]:
        """Complete sentences as they arrive; the rest when the text ends (a tool call starts or the stream does)."""
        while True:
            visible = self.speakable()
            ends = [m.end() for m in _SENTENCE_END.finditer(visible, self.spoken)]
            if ends:
                piece, self.spoken = visible[self.spoken : ends[-1]], ends[-1]
                if piece.strip():
                    yield piece.strip()
            if self.calls or not await self._read():
                break
        rest = self.speakable()[self.spoken :].strip()
        self.spoken = len(self.speakable())
        if rest:
            yield rest

    async def finish(self) -> None:
        while await self._read():
            pass


class LanguageModelAssistant:
    """Answers with a local model; `fallback` (the rules) answers while the model cannot be reached."""

    def __init__(self, client: openai.AsyncOpenAI, model: str, fallback: Assistant,
                 recognition_problem: Callable[[], str] | None = None, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        self.client, self.model, self.fallback = client, model, fallback
        self._recognition_problem = recognition_problem or (lambda: "")
        self._clock = clock
        self._down_until = 0.0

    async def respond(self, context: ResponseContext) -> list[Say | Call]:
        """Everything at once (the streamed Say's sentences are joined)."""
        outputs: list[Say | Call] = []
        async for output in self.stream(context):
            if isinstance(output, Say) and output.sentences is not None:
                output = Say(" ".join([s async for s in output.sentences]))
            outputs.append(output)
        return outputs

    async def stream(self, context: ResponseContext) -> AsyncIterator[Say | Call]:
        newest = context.last
        if newest is not None and (wordless := wordless_voice_reply(newest, self._recognition_problem)) is not None:
            for output in wordless:  # a spoken turn without words never reaches the model
                yield output
            return
        if self._clock() < self._down_until:
            for output in await self.fallback.respond(context):
                yield output
            return
        reply = _Reply(self._open(context))
        await reply.wait_for_content()
        if reply.speakable().strip() and reply.failure is None:
            yield Say("", sentences=reply.sentences())
        await reply.finish()
        if reply.failure is not None:
            log.warning("local language model failed: %s", reply.failure)
            self._down_until = self._clock() + RETRY_AFTER_SECONDS
            yield Say(replies.model_unreachable_reply())
            for output in await self.fallback.respond(context):
                yield output
            return
        if not (reply.speakable().strip() or reply.calls):  # thoughts only: say so rather than stay silent
            yield Say(replies.model_said_nothing_reply())
        for index in sorted(reply.calls):
            call = reply.calls[index]
            yield Call(call["name"] or "(名前のないツール)", call["arguments"])

    async def _open(self, context: ResponseContext) -> AsyncIterator[Any]:
        tools = chat_tools(context.tools)
        allowed = tools and context.tool_choice != "none" and _failed_calls_in_a_row(context.items) < MAX_FAILED_CALLS
        stream = await self.client.chat.completions.create(
            model=self.model, messages=chat_messages(context), stream=True,
            **({"tools": tools} if allowed else {}))
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.close()  # barge-in or the end: stop the model generating for nobody
