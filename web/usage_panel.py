"""Usage, latency and export on the page and in the API: the live line, the download buttons, /usage and /export.

Kept apart from the page layout: the line has its own update stream, so the page only places it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from conversation.conversation import Conversation
from conversation.export import conversation_record, to_json
from conversation.usage import meter_for
from settings import RealtimeSettings
from web.browsers import BrowserSessions
from web.export import to_markdown, usage_line
from web.labels import CALL_STATUS_LABELS, ERROR_TITLE

log = logging.getLogger(__name__)

FORMATS = {"json": ("json", "application/json"), "markdown": ("md", "text/markdown")}
# Runs in the browser after the export text arrived: saves it as a file without a second click.
DOWNLOAD_JS = """
(payload) => {
  if (!payload) return;
  const {name, type, text} = JSON.parse(payload);
  const url = URL.createObjectURL(new Blob([text], {type: type + ";charset=utf-8"}));
  const link = Object.assign(document.createElement("a"), {href: url, download: name});
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
"""


def export_text(conversation: Conversation | None, fmt: str, settings: RealtimeSettings) -> str:
    """The conversation in `fmt` ("json" or "markdown"); an empty conversation exports as empty."""
    if conversation is None:
        record = conversation_record([], [], meter_for(settings).summary(), settings.label)
    else:
        record = conversation_record(conversation.transcript.items, conversation.tools.calls.values(),
                                     conversation.usage_summary(), conversation.settings.label)
    return to_json(record) if fmt == "json" else to_markdown(record, CALL_STATUS_LABELS)


def normalize_format(fmt: object) -> str | None:
    text = fmt.strip().lower() if isinstance(fmt, str) else ""
    return {"md": "markdown", "markdown": "markdown", "json": "json"}.get(text)


class UsageApi:
    """/usage and /export for `gradio_client` callers, on the caller's own conversation."""

    def __init__(self, registry: BrowserSessions, settings: RealtimeSettings) -> None:
        self.registry = registry
        self.settings = settings

    def register(self) -> set[str]:
        gr.api(self.usage, api_name="usage", concurrency_limit=None)
        gr.api(self.export, api_name="export", concurrency_limit=None)
        return {"usage", "export"}

    def usage(self, request: gr.Request) -> dict[str, Any]:
        """Tokens (input, cached, output), estimated cost, one row per response, and latency medians."""
        conversation = self.registry.peek(request.session_hash)
        if conversation is None:
            return meter_for(self.settings).summary()
        return conversation.usage_summary()

    def export(self, format: str, request: gr.Request) -> str:
        """The conversation with tool calls and results, usage and timings: format "json" or "markdown"."""
        fmt = normalize_format(format)
        if fmt is None:
            raise gr.Error(f"形式は json か markdown を指定してください（指定: {format!r}）。", title=ERROR_TITLE,
                           print_exception=False)
        return export_text(self.registry.peek(request.session_hash), fmt, self.settings)


def usage_panel(demo: gr.Blocks, registry: BrowserSessions, settings: RealtimeSettings) -> gr.Markdown:
    """Place the live usage line and the two download buttons here, and wire them."""

    def empty_line() -> str:
        return usage_line(meter_for(settings).summary())

    async def watch(request: gr.Request) -> AsyncIterator[str]:
        shown = ""
        async for conversation, _ in registry.updates(request.session_hash):
            line = usage_line(conversation.usage_summary(detail=False))
            if line != shown:
                shown = line
                yield line

    def download(fmt: str):
        def handler(request: gr.Request) -> str:
            extension, mime = FORMATS[fmt]
            name = time.strftime(f"conversation-%Y%m%d-%H%M%S.{extension}")
            text = export_text(registry.peek(request.session_hash), fmt, settings)
            return json.dumps({"name": name, "type": mime, "text": text}, ensure_ascii=False)
        return handler

    line = gr.Markdown(empty_line(), elem_id="usage")
    with gr.Row():  # under the line, so a narrow screen keeps the line whole
        save_markdown = gr.Button("会話を保存（Markdown）", size="sm", scale=0, min_width=180,
                                  elem_id="export-markdown")
        save_json = gr.Button("会話を保存（JSON）", size="sm", scale=0, min_width=160, elem_id="export-json")
    payload = gr.Textbox(visible=False)
    demo.load(watch, outputs=[line], concurrency_limit=None, show_progress="hidden")
    for button, fmt in ((save_markdown, "markdown"), (save_json, "json")):
        button.click(download(fmt), outputs=[payload], concurrency_limit=None, show_progress="hidden").then(
            None, inputs=[payload], js=DOWNLOAD_JS)
    return line
