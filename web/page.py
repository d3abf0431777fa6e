"""The Gradio page: layout, and the events that connect it to the browser session's conversation."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import gradio as gr
from fastrtc import WebRTC

from conversation.conversation import Snapshot
from settings import RealtimeSettings
from web.api import TOOL_COLUMNS, ConversationApi, document_only, tool_rows, validate_message
from web.browsers import BrowserSessions
from web.chat import chatbot_messages
from web.labels import (
    CANCEL_BUTTON,
    CANCEL_HINT,
    INFO_TITLE,
    WARNING_TITLE,
    cancelled_label,
    connection_label,
    notice_label,
    page_script,
    servers_label,
)
from web.usage_panel import UsageApi, usage_panel
from web.voice import MEDIA_TIMEOUT_SECONDS, wire_voice

if TYPE_CHECKING:  # the offline engine (speech models) is imported only when it runs
    from offline.runtime import OfflineEngine

log = logging.getLogger(__name__)

INTRO = ("# 🎙️ リアルタイム音声アシスタント\n話しかけるか、メッセージを入力してください。"
         "天気の質問や調べもの（時間のかかる検索も）を、会話を続けながら処理します。")
OFFLINE_RULES_NOTE = (
    "**オフラインモード**で動作中です。応答するのは内蔵のルールベース・アシスタント（言語モデルではありません）で、"
    "天気（例:「明日の大阪の天気は？」）とナレッジベース検索（例:「AIについて調べて」）に答えます。"
)
OFFLINE_MODEL_NOTE = (
    "**オフラインモード**で動作中です。応答するのはこのマシンのローカル言語モデル（{model}）で、"
    "天気とナレッジベース検索のツールも使えます（つながらないときは内蔵のルールベース・アシスタントが答えます）。"
)
OFFLINE_NOTE_END = (
    "話しかけた内容はこのマシンの音声認識（Whisper）で文字にします（初回はモデルをダウンロードします）。"
    "Azure OpenAI を使うには `.env` に "
    "`AZURE_OPENAI_ENDPOINT` / `AZURE_OPENAI_API_KEY` / `AZURE_OPENAI_DEPLOYMENT` を設定して再起動してください。"
)
NO_TOOLS_YET = "まだツールは実行されていません。天気や調べものを頼むと、ここに実行状況が表示されます。"
PLACEHOLDER = "メッセージを入力して Enter"
CSS = """
/* The 「会話」 label floats over the chat's top edge: the scrolling list starts below it. */
#chat .bubble-wrap { margin-top: 1.75rem; height: calc(100% - 1.75rem); }
#tools table { min-width: 720px; }                        /* narrow screens scroll the table, headers stay whole */
#tools th, #tools th * { white-space: nowrap; overflow: visible; text-overflow: clip; }
"""

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&$])")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)


def as_typed(text: str) -> str:
    """Markdown source that renders exactly `text`: no markup, no HTML, nothing fetched."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def safe_markdown(text: str) -> str:
    """The assistant's Markdown, readable, without raw HTML or images (nothing fetched); code stays as written."""
    parts = _CODE.split(text)
    for index in range(0, len(parts), 2):  # even parts are outside code
        parts[index] = parts[index].replace("<", "\\<").replace("![", "!\\[")
    return "".join(parts)


def chat_view(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The transcript as the chat shows it: the user's words as typed, the assistant's as safe Markdown."""
    return [{**m, "content": as_typed(m["content"]) if m["role"] == "user" else safe_markdown(m["content"])}
            for m in messages]


def offline_note(engine: OfflineEngine) -> str:
    model = engine.settings.llm_model
    return (OFFLINE_MODEL_NOTE.format(model=model) if engine.settings.language_model_on else OFFLINE_RULES_NOTE) + \
        OFFLINE_NOTE_END


def status_line(snapshot: Snapshot | None, provider: str, recognition_problem: str = "") -> str:
    """「接続先」 and 「状態」, each once, then why speech is not understood (offline), then any notice."""
    state = connection_label(snapshot.state) if snapshot else "準備中…"
    problem = f"\n\n🎤 音声認識は使えません: {recognition_problem}" if recognition_problem else ""
    notice = f"\n\n⚠️ {notice_label(snapshot.notice)}" if snapshot and snapshot.notice else ""
    return f"**接続先:** {provider}　**状態:** {state}{problem}{notice}"


class PageEvents:
    """What the page's components do; each event finds its conversation by the Gradio session hash."""

    def __init__(self, registry: BrowserSessions, provider: str, offline: OfflineEngine | None) -> None:
        self.registry = registry
        self.provider = provider
        self.offline = offline

    def status(self, snapshot: Snapshot | None) -> str:
        return status_line(snapshot, self.provider, self.offline.recognition_problem() if self.offline else "")

    async def send(self, message: str, request: gr.Request) -> str | dict:
        """Send the typed message (the box empties); a message that cannot be sent stays in the box."""
        problem = validate_message(message)
        if problem:
            log.info("rejected a typed message: %s", problem)
            gr.Warning(problem, title=WARNING_TITLE)
            return gr.update()  # unchanged: sending a lone surrogate back would fail to encode
        await self.registry.get(request.session_hash).send_text(message.strip())
        return ""

    async def watch(self, request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the chat, the tool table and the status line for the page's lifetime (across new conversations)."""
        async for _, snapshot in self.registry.updates(request.session_hash):
            rows = tool_rows(snapshot.calls)
            chat = chat_view(chatbot_messages(snapshot.messages))
            yield chat, rows, gr.update(visible=not rows), self.status(snapshot)

    def select_call(self, event: gr.SelectData, request: gr.Request) -> str:
        """A row of the tool table was clicked: remember which call it shows (rows move as calls start)."""
        conversation = self.registry.peek(request.session_hash)
        row = list(event.row_value or [])[:3]
        for call in conversation.snapshot().calls if conversation else []:
            if tool_rows([call])[0][:3] == row:
                return call.call_id
        return ""

    def cancel_call(self, call_id: str, request: gr.Request) -> str:
        """The キャンセル button: stop the selected call, or every running one when none is selected."""
        conversation = self.registry.peek(request.session_hash)
        if conversation is None:
            names, asked = [], ""
        else:
            call = conversation.tools.calls.get(call_id)
            names = conversation.tools.cancel(call_id=call_id) if call else conversation.tools.cancel()
            asked = call.name if call else ""
        gr.Info(cancelled_label(names, asked), title=INFO_TITLE)
        return ""

    async def new_conversation(self, request: gr.Request) -> None:
        await self.registry.reset(request.session_hash)

    async def leave(self, request: gr.Request) -> None:
        await self.registry.close(request.session_hash, gone=True)


def build_ui(
    registry: BrowserSessions,
    settings: RealtimeSettings,
    rtc_configuration: Any,
    server_rtc_configuration: dict | None,
    max_voice_sessions: int,
    voice_time_limit: float,
    offline: OfflineEngine | None = None,
    voice_media_timeout: float = MEDIA_TIMEOUT_SECONDS,
) -> gr.Blocks:
    provider = f"{settings.label}（{offline.assistant_label}）" if offline else settings.label
    events = PageEvents(registry, provider, offline)
    with gr.Blocks(title="リアルタイム音声アシスタント", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        if offline is not None:
            gr.Markdown(offline_note(offline))
        status = gr.Markdown(events.status(None))
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
                chatbot = gr.Chatbot(
                    type="messages", label="会話", height=420, elem_id="chat",
                    group_consecutive_messages=False,  # each answer its own bubble
                    # Messages reach the chat escaped (chat_view), so no tag survives to be kept or dropped;
                    # allow_tags=True is Gradio 6's default and the one value 5.50 does not warn about.
                    sanitize_html=True, allow_tags=True, latex_delimiters=[],
                )
                with gr.Row():
                    # No max_length: the browser would cut a long paste silently; `send` explains the limit.
                    text = gr.Textbox(label="メッセージ", placeholder=PLACEHOLDER, show_label=False, scale=5,
                                      lines=1, max_lines=6)
                    send = gr.Button("送信", variant="primary", scale=1, min_width=80)
        usage_panel(demo, registry, settings)
        table = gr.Dataframe(headers=TOOL_COLUMNS, label="ツールの実行状況（新しい順）", interactive=False,
                             wrap=True, value=[], row_count=0, elem_id="tools")
        no_tools = gr.Markdown(NO_TOOLS_YET)
        with gr.Row(equal_height=True):
            gr.Markdown(CANCEL_HINT)
            cancel = gr.Button(CANCEL_BUTTON, variant="stop", size="sm", scale=0, min_width=200, elem_id="cancel-tool")
        selected_call = gr.State("")
        gr.Markdown(servers_label(registry.tools.unavailable() if registry.tools else {}), elem_id="tool-servers")

        wire_voice(voice, registry, max_voice_sessions, voice_time_limit, voice_media_timeout)
        demo.load(None, js=page_script(CSS))
        # A stream for the page's lifetime: no progress border on the components it updates.
        demo.load(events.watch, outputs=[chatbot, table, no_tools, status], concurrency_limit=None,
                  show_progress="hidden")
        gr.on([text.submit, send.click], events.send, inputs=[text], outputs=[text], concurrency_limit=None)
        table.select(events.select_call, outputs=[selected_call], concurrency_limit=None, show_progress="hidden")
        cancel.click(events.cancel_call, inputs=[selected_call], outputs=[selected_call], concurrency_limit=None)
        # The chat's trash icon and the button both start a new conversation.
        gr.on([new_chat.click, chatbot.clear], events.new_conversation, concurrency_limit=None)
        with warnings.catch_warnings():  # Gradio 5.50's unload() passes its own deprecated show_api=False
            warnings.filterwarnings("ignore", "The 'show_api' parameter", DeprecationWarning)
            demo.unload(events.leave)
        document_only(demo, ConversationApi(registry).register() | UsageApi(registry, settings).register())
    return demo
