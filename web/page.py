"""The Gradio page and API: thin wiring from components to the browser session's conversation."""

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastrtc import WebRTC

from conversation.conversation import Conversation, Snapshot
from conversation.tool_runner import ToolCall
from settings import RealtimeSettings
from web.browsers import BrowserSessions
from web.voice import VoiceHandler

MAX_MESSAGE_CHARS = 2000
CHAT_TIMEOUT_SECONDS = 120.0
TOOL_COLUMNS = ["開始時刻", "ツール", "引数", "状態", "経過秒", "結果"]

OFFLINE_NOTE = (
    "**オフラインモード**で動作中です。応答するのは内蔵のルールベース・アシスタント（言語モデルではありません）で、"
    "天気（例:「明日の大阪の天気は？」）とナレッジベース検索（例:「AIについて調べて」）に答えます。"
    "音声は発話の区切りを検出しますが文字起こしはしません。Azure OpenAI を使うには `.env` に "
    "`AZURE_OPENAI_ENDPOINT` / `AZURE_OPENAI_API_KEY` / `AZURE_OPENAI_DEPLOYMENT` を設定して再起動してください。"
)


def validate_message(message: Any) -> str | None:
    """Why a message cannot be sent (Japanese), or None when it is fine."""
    if not isinstance(message, str):
        return "メッセージは文字列で送ってください。"
    if not message.strip():
        return "メッセージが空です。"
    if len(message) > MAX_MESSAGE_CHARS:
        return f"メッセージが長すぎます（{len(message)}文字）。{MAX_MESSAGE_CHARS}文字以内にしてください。"
    return None


def tool_rows(calls: list[ToolCall], now: float | None = None) -> list[list[str]]:
    """The tool-status table as a user sees it: newest first, elapsed ticking while running."""
    now = now or time.time()
    rows = []
    for call in calls:
        arguments = call.arguments if len(call.arguments) <= 40 else call.arguments[:39] + "…"
        rows.append([
            time.strftime("%H:%M:%S", time.localtime(call.started_at)),
            call.name,
            arguments,
            call.status,
            f"{call.elapsed(now):.1f}",
            call.summary if call.status != "実行中" else "",
        ])
    return rows


def status_line(snapshot: Snapshot) -> str:
    notice = f"\n\n⚠️ {snapshot.notice}" if snapshot.notice else ""
    return f"**状態:** {snapshot.status}{notice}"


def build_ui(
    registry: BrowserSessions,
    settings: RealtimeSettings,
    rtc_configuration: Any,
    server_rtc_configuration: dict | None,
    max_voice_sessions: int,
    voice_time_limit: float,
) -> gr.Blocks:
    async def chat(message: str, request: gr.Request) -> AsyncIterator[str]:
        """Send a message and stream the assistant's reply, including results of tools it started."""
        problem = validate_message(message)
        if problem:
            raise gr.Error(problem)
        session = registry.get(request.session_hash)
        if not await session.wait_connected(10):
            yield f"接続できませんでした: {session.notice or session.status}"
            return
        turn = await session.send_text(message.strip())
        shown = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHAT_TIMEOUT_SECONDS):
                async for _ in session.updates():
                    text = session.turn_text(turn)
                    if text != shown:
                        shown = text
                        yield text
                    if turn.done.is_set():
                        break
        if not shown:
            yield session.notice or "（応答がありませんでした）"

    def tool_status(request: gr.Request) -> list[list[str]]:
        """The tool calls of this session: started at, tool, arguments, status, elapsed seconds, result."""
        session = registry.peek(request.session_hash)
        return tool_rows(session.snapshot().calls) if session else []

    async def reset(request: gr.Request) -> str:
        """Start a new conversation (the current one, and its running tools, end)."""
        await registry.reset(request.session_hash)
        return "新しい会話を開始しました。"

    async def send_from_page(message: str, request: gr.Request) -> str:
        problem = validate_message(message)
        if problem:
            gr.Warning(problem)
            return message
        session = registry.get(request.session_hash)
        await session.send_text(message.strip())
        return ""

    async def watch(request: gr.Request) -> AsyncIterator[tuple[Any, Any, str]]:
        session: Conversation | None = registry.get(request.session_hash)
        while session is not None:
            async for snapshot in session.updates():
                yield snapshot.messages, tool_rows(snapshot.calls), status_line(snapshot)
            session = await registry.next_session(request.session_hash, session)

    async def leave(request: gr.Request) -> None:
        await registry.close(request.session_hash, gone=True)

    def session_hash(request: gr.Request) -> str:
        return request.session_hash or ""

    with gr.Blocks(title="リアルタイム音声アシスタント", analytics_enabled=False) as demo:
        gr.Markdown("# 🎙️ リアルタイム音声アシスタント\n話しかけるか、メッセージを入力してください。"
                    "天気の質問や調べもの（時間のかかる検索も）を、会話を続けながら処理します。")
        if settings.provider == "offline":
            gr.Markdown(OFFLINE_NOTE)
        gr.Markdown(f"**接続先:** {settings.label}")
        status = gr.Markdown("**状態:** 準備中…")
        hash_box = gr.Textbox(visible=False)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                voice = WebRTC(
                    label="音声会話", mode="send-receive", modality="audio",
                    rtc_configuration=rtc_configuration, server_rtc_configuration=server_rtc_configuration,
                    button_labels={"start": "録音開始", "stop": "停止", "waiting": "接続中…"},
                    full_screen=False,  # fastrtc's default draws the wave over the whole page
                )
                new_chat = gr.Button("新しい会話", variant="secondary")
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(type="messages", label="会話", height=420)
                with gr.Row():
                    text = gr.Textbox(placeholder="メッセージを入力して Enter", show_label=False, scale=5,
                                      max_length=MAX_MESSAGE_CHARS)
                    send = gr.Button("送信", variant="primary", scale=1, min_width=80)
        table = gr.Dataframe(headers=TOOL_COLUMNS, label="ツールの実行状況（新しい順）", interactive=False,
                             wrap=True, value=[])

        # One connection above our own limit, so the next caller hears why (in Japanese) instead of fastrtc's text.
        voice.stream(VoiceHandler(registry, max_voice_sessions), inputs=[voice, hash_box], outputs=[voice],
                     concurrency_limit=max_voice_sessions + 1, time_limit=voice_time_limit)
        demo.load(session_hash, outputs=[hash_box], show_api=False, api_name=False, queue=False)
        # A stream for the page's lifetime: no progress border on the components it updates.
        demo.load(watch, outputs=[chatbot, table, status], show_api=False, api_name=False, concurrency_limit=None,
                  show_progress="hidden")
        for trigger in (text.submit, send.click):
            trigger(send_from_page, inputs=[text], outputs=[text], show_api=False, api_name=False,
                    concurrency_limit=None)
        new_chat.click(reset, outputs=None, show_api=False, api_name=False, concurrency_limit=None)
        demo.unload(leave)
        # Each streamed value is the reply so far (a string); gradio cannot read that from AsyncIterator[str].
        chat.__signature__ = inspect.signature(chat).replace(return_annotation=str)  # type: ignore[attr-defined]
        gr.api(chat, api_name="chat", concurrency_limit=None)
        gr.api(tool_status, api_name="tool_status", concurrency_limit=None)
        gr.api(reset, api_name="reset", concurrency_limit=None)

    for dependency in demo.fns.values():  # fastrtc's own events are not part of our API
        if dependency.api_name not in ("chat", "tool_status", "reset"):
            dependency.show_api = False
    return demo
