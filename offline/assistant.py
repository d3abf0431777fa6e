"""The offline mode's rule-based assistant: an intent router instead of a language model.

It answers through the same protocol as the service: tool calls with JSON arguments, outputs
read back from the conversation, long-running results told when they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from offline import replies
from offline.engine import Call, ResponseContext, Say
from offline.intents import detect_language, route
from offline.streaming import is_voice, text_of
from speech_text import is_hallucination


def wordless_voice_reply(item: dict[str, Any], recognition_problem: Callable[[], str]) -> list[Say] | None:
    """The answer to a voice turn without words: an honest "not understood" when it was never transcribed
    (never a made-up text), nothing for noise Whisper "heard" (the app hides it too); None when there are words."""
    if not is_voice(item):
        return None
    text = text_of(item)
    if not text and all(part.get("transcript") is None for part in item.get("content") or []):
        return [Say(replies.voice_not_transcribed_reply(recognition_problem()))]
    return [] if is_hallucination(text) else None


def _last_user_language(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user" and text_of(item):
            return detect_language(text_of(item))
    return "ja"


class OfflineAssistant:
    def __init__(self, recognition_problem: Callable[[], str] | None = None) -> None:
        # Why a voice turn has no transcript, said to the user (e.g. the model could not be downloaded).
        self._recognition_problem = recognition_problem or (lambda: "")

    async def respond(self, context: ResponseContext) -> list[Say | Call]:
        # Answer everything added since the engine last produced an item (e.g. a question typed while a
        # long-running tool's result arrived: one response.create covers both).
        pending = []
        for item in reversed(context.items):
            # Stop at what an earlier response produced (or, after a reconnect, a replayed answer).
            if item.get("object") == "realtime.item" or item.get("role") == "assistant":
                break
            if item.get("type") == "function_call_output" or (
                item.get("type") == "message" and item.get("role") == "user"
            ):
                pending.insert(0, item)
        outputs: list[Say | Call] = []
        for item in pending or [context.last or {}]:
            outputs += await self._respond_to(item, context)
        return outputs

    async def _respond_to(self, last: dict, context: ResponseContext) -> list[Say | Call]:
        language = _last_user_language(context.items)
        if last.get("type") == "function_call_output":
            return [Say(self._tell_output(context.items, last, language))]
        if last.get("type") != "message" or last.get("role") != "user":
            return [Say(replies.help_reply(language))]
        if (wordless := wordless_voice_reply(last, self._recognition_problem)) is not None:
            return wordless
        text = text_of(last)
        intent = route(text)
        if intent.kind == "weather" and "location" not in intent.arguments:
            return [Say(replies.ask_place_reply(intent.language))]
        if intent.tool and context.tool_choice != "none":
            return [Call(intent.tool, json.dumps(intent.arguments, ensure_ascii=False))]
        simple = {"greeting": replies.greeting_reply, "help": replies.help_reply, "thanks": replies.thanks_reply}
        if intent.kind in simple:
            return [Say(simple[intent.kind](intent.language))]
        return [Say(replies.unknown_reply(text, intent.language))]

    def _tell_output(self, items: list[dict[str, Any]], output_item: dict[str, Any], language: str) -> str:
        call = next((i for i in items if i.get("type") == "function_call"
                     and i.get("call_id") == output_item.get("call_id")), {})
        tool = call.get("name", "")
        try:
            output = json.loads(output_item.get("output") or "{}")
        except json.JSONDecodeError:
            output = {}
        status = output.get("status")
        if status == "started":
            return replies.started_reply(tool, language)
        if status == "cancelled":
            return replies.cancelled_reply(tool, language)
        if status == "completed" and tool == "cancel_tool":
            return replies.cancel_tool_reply(output.get("result", {}), language)
        if status == "completed" and tool == "get_weather":
            return replies.describe_weather(output.get("result", {}), language)
        if status == "completed" and tool == "search_database":
            return replies.describe_search(output.get("result", {}), language)
        return replies.describe_tool_failure(tool, output.get("error") or str(status), language)
