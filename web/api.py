"""The API for `gradio_client` callers: /chat, /tool_status, /cancel_tool and /reset, each on the caller's own
conversation.

A caller's Gradio session hash picks its conversation (the same registry the page uses), so one
`Client` keeps one conversation across calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable

import gradio as gr

from conversation.tool_runner import ToolCall
from web.browsers import BrowserSessions
from web.labels import ERROR_TITLE, call_status_label, call_summary_label, cancelled_label, notice_label, progress_label

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
CHAT_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 10.0
NO_ANSWER = "（応答がありませんでした）"
TOOL_COLUMNS = ["開始時刻", "ツール", "引数", "状態", "経過秒", "結果"]
ARGUMENT_CHARS = 40
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # control, format (zero-width, BOM, bidi marks) and spaces


def validate_message(message: object) -> str | None:
    """Why a message cannot be sent (Japanese), or None when it is fine."""
    if not isinstance(message, str):
        return "メッセージは文字列で送ってください。"
    if _LONE_SURROGATE.search(message):  # a browser can send one (a cut emoji); UTF-8 cannot carry it to the service
        return ("メッセージに壊れた文字（対になっていないサロゲート）が含まれています。"
                "その部分を消してから送ってください。")
    if all(unicodedata.category(ch) in _INVISIBLE for ch in message):
        return "メッセージが空です。"
    if len(message) > MAX_MESSAGE_CHARS:
        return f"メッセージが長すぎます（{len(message)}文字）。{MAX_MESSAGE_CHARS}文字以内にしてください。"
    return None


def tool_rows(calls: Iterable[ToolCall], now: float | None = None) -> list[list[str]]:
    """The tool-status table as a user sees it: newest first, elapsed ticking while running."""
    now = now or time.time()
    rows = []
    for call in calls:
        arguments = call.arguments
        if len(arguments) > ARGUMENT_CHARS:
            arguments = arguments[:ARGUMENT_CHARS - 1] + "…"
        status, result = call_status_label(call.status), call_summary_label(call.summary, call.cancel_reason)
        if call.finished_at is None:  # while running: how far it is, and what it is doing
            progress = call.progress
            status += f" {progress_label(progress.done, progress.total)}" if progress else ""
            result = progress.message if progress else ""
        rows.append([
            time.strftime("%H:%M:%S", time.localtime(call.started_at)),
            call.name,
            arguments,
            status,
            f"{call.elapsed(now):.1f}",
            result,
        ])
    return rows


class ConversationApi:
    """The endpoints; each finds the caller's conversation in the registry by the Gradio session hash."""

    def __init__(self, registry: BrowserSessions) -> None:
        self.registry = registry

    def register(self) -> set[str]:
        """Add the endpoints to the Blocks being built; returns their names (the documented API)."""
        endpoints: dict[str, Callable] = {"chat": self.chat, "tool_status": self.tool_status, "reset": self.reset,
                                          "cancel_tool": self.cancel_tool}
        for name, endpoint in endpoints.items():
            gr.api(endpoint, api_name=name, concurrency_limit=None)
        return set(endpoints)

    async def chat(self, message: str, request: gr.Request) -> AsyncIterator[str]:
        """Send a message and stream the assistant's reply, including results of tools it started."""
        problem = validate_message(message)
        if problem:
            log.info("rejected an API message: %s", problem)
            raise gr.Error(problem, title=ERROR_TITLE, print_exception=False)
        conversation = self.registry.get(request.session_hash)
        if not await conversation.wait_connected(CONNECT_TIMEOUT_SECONDS):
            yield f"接続できませんでした: {notice_label(conversation.notice) or '時間内に接続できませんでした。'}"
            return
        turn = await conversation.send_text(message.strip())
        shown = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHAT_TIMEOUT_SECONDS):
                # Only this turn's text is read: no snapshot of the whole chat at every delta.
                async for _ in conversation.feed.changes(lambda: 1.0 if conversation.tools.running else None):
                    text = conversation.turn_text(turn)
                    if text != shown:
                        shown = text
                        yield text
                    if turn.done.is_set():
                        break
        if not shown:  # a connection notice is not an answer: only a turn given up says why
            yield (notice_label(conversation.notice) if turn.unanswered else "") or NO_ANSWER

    def tool_status(self, request: gr.Request) -> list[list[str]]:
        """The tool calls of this conversation: started at, tool, arguments, status, elapsed seconds, result."""
        conversation = self.registry.peek(request.session_hash)
        return tool_rows(conversation.snapshot().calls) if conversation else []

    def cancel_tool(self, tool: str, request: gr.Request) -> str:
        """Stop the running calls of `tool` (empty: every running call) in this conversation; says how many."""
        tool = tool.strip() if isinstance(tool, str) else ""
        conversation = self.registry.peek(request.session_hash)
        names = conversation.tools.cancel(tool) if conversation else []
        log.info("cancelled %d running call(s) through the API", len(names))
        return cancelled_label(names, tool)

    async def reset(self, request: gr.Request) -> str:
        """Start a new conversation (the current one, and its running tools, end)."""
        await self.registry.reset(request.session_hash)
        return "新しい会話を開始しました。"


# Gradio documents an endpoint's output from the return annotation and cannot see through AsyncIterator[str]:
# each streamed value is the reply so far, a str.
ConversationApi.chat.__signature__ = inspect.signature(ConversationApi.chat).replace(  # type: ignore[attr-defined]
    return_annotation=str)


def document_only(demo: gr.Blocks, endpoints: set[str]) -> None:
    """Only our endpoints appear in `view_api`, not the page's events nor fastrtc's.

    Gradio 5.50 deprecates the `show_api=` / `api_name=False` arguments (Gradio 6 has `api_visibility`),
    so the flag that `view_api` reads is set once here.
    """
    for dependency in demo.fns.values():
        dependency.show_api = dependency.api_name in endpoints
