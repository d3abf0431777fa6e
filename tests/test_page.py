"""The page's text handling on its own: what the chat and the status line are given to draw."""

from __future__ import annotations

from conversation.conversation import ConnectionState, Snapshot
from conversation.notices import Notice, NoticeKind
from web.page import as_typed, chat_view, safe_markdown, status_line


def test_status_line_names_the_provider_and_the_state_once():
    snapshot = Snapshot([], [], ConnectionState.RECONNECTING, Notice(NoticeKind.SERVICE_ERROR, "回線が切れました。"))
    line = status_line(snapshot, "Azure OpenAI (gpt-realtime, GA)")
    assert line.count("Azure OpenAI (gpt-realtime, GA)") == 1
    assert "**状態:** 再接続中…" in line and line.endswith("⚠️ サービスからのエラー: 回線が切れました。")
    assert status_line(None, "オフライン").count("オフライン") == 1


def test_status_line_says_why_speech_is_not_understood():
    line = status_line(None, "オフラインモード", "音声認識モデル「base」をダウンロードできませんでした。")
    assert "音声認識は使えません: 音声認識モデル「base」をダウンロードできませんでした。" in line
    assert "音声認識" not in status_line(None, "オフラインモード")


def test_typed_text_is_escaped_for_markdown_and_html():
    typed = r"<b>太字</b><img src=x> **星** _斜_ `code` [link](x) # 見出し \ & $$x$$"
    escaped = as_typed(typed)
    # Every Markdown/HTML character is backslash-escaped, so the renderer shows it as a character.
    assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "<>*_`[]()#&$" and i > 0)
    assert escaped.replace("\\", "") == typed.replace("\\", "")


def test_assistant_markdown_keeps_formatting_but_not_html_or_images():
    text = "**大事** ![画像](http://example.com/a.png) <img src=y> と `<b>` と\n```\n<i>コード</i>\n```"
    safe = safe_markdown(text)
    assert safe.startswith("**大事**")  # Markdown formatting is kept
    assert "!\\[画像]" in safe and "\\<img src=y>" in safe
    assert "`<b>`" in safe and "```\n<i>コード</i>\n```" in safe  # code is shown as written
    shown = chat_view([{"role": "user", "content": "<b>"}, {"role": "assistant", "content": "<b>"}])
    assert [m["content"] for m in shown] == ["\\<b\\>", "\\<b>"]
