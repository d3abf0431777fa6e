"""The page as a Japanese user meets it, in a real headless Chromium (issue 10): every word Japanese, typed
text shown as typed, one bubble per answer, long messages explained, the trash icon, the narrow layout.

Needs Debian's /usr/bin/chromium, fonts-noto-cjk and `pip install playwright` (no `playwright install`).
"""

from __future__ import annotations

import logging

import pytest
from support.browser import (
    browser_test_marks,
    chat_messages,
    click,
    message_box,
    open_page,
    screenshot,
    send_text,
    start_recording,
    stop_recording,
    wait_for_chat,
    wait_for_page_ready,
    wait_until,
)
from support.page_checks import cut_headers, english_on_page, toasts

from offline.engine import Say

pytest_plugins = ["support.browser_app"]  # the app, the weather stand-in and Chromium (shared fixtures)

pytestmark = browser_test_marks()

OFFLINE_LABEL = "オフラインモード（内蔵のルールベース・アシスタント）"  # RealtimeSettings.label offline


def no_english(page, where: str) -> None:
    found = english_on_page(page)
    assert not found, f"English on the page {where}: {found}"


def test_the_page_is_japanese_throughout(app, launch, playwright_driver):
    if not app.offline:
        pytest.skip("the page's words do not depend on the service; checked once, offline")
    browser = launch(None)
    page, _ = open_page(browser, app.url)
    no_english(page, "after loading")
    body = page.inner_text("body")
    # 「接続先」 and 「状態」 each once; the provider's label is not repeated in the state.
    assert body.count("接続先") == 1 and body.count("状態:") == 1, body[:400]
    assert body.count(OFFLINE_LABEL) == 1, body[:400]
    assert page.get_by_text("まだツールは実行されていません").is_visible()
    # The 「会話」 label sits above the scrolling list, so it never covers a message.
    label_bottom, list_top = page.evaluate("""() => [
        document.querySelector('#chat label').getBoundingClientRect().bottom,
        document.querySelector('#chat .bubble-wrap').getBoundingClientRect().top]""")
    assert label_bottom <= list_top, (label_bottom, list_top)

    box = message_box(page)
    box.fill("   ")
    box.press("Enter")
    page.get_by_text("メッセージが空です。").wait_for(timeout=5_000)
    assert any(t.startswith("注意") for t in toasts(page)), toasts(page)
    no_english(page, "with a warning toast")

    start_recording(page)
    page.get_by_role("button", name="マイクをミュート").wait_for(timeout=5_000)
    no_english(page, "while recording")
    stop_recording(page)

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    no_english(page, "at 390 px")
    assert cut_headers(page) == [], "tool table headers cut at 390 px"
    screenshot(page, "page-390px")

    # A browser set to English still gets a Japanese page (Gradio's own words follow the browser's language).
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    english_page = context.new_page()
    english_page.goto(app.url)
    wait_for_page_ready(english_page)
    no_english(english_page, "in a browser set to English")


def test_typed_html_is_shown_as_typed_and_nothing_is_fetched(app, launch):
    typed = "<b>太字</b><img src=x> **星** と $$x$$"
    if app.assistant is not None:
        app.assistant.rules = {"太字": lambda m: [Say("**大事**な点: <img src=y> は `<b>` のように書きます")]}
    page, _ = open_page(launch(None), app.url)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if r.url.rstrip("/").endswith(("/x", "/y")) else None)
    send_text(page, typed)
    wait_for_chat(page, lambda m: len(m) >= 2 and m[-1][0] == "assistant" and m[-1][1], 15, "an answer")
    user = page.locator('#chat [data-testid="user"]').first
    assert user.inner_text().strip() == typed
    assert user.locator("b, strong, em, img, .katex").count() == 0, user.inner_html()
    if app.assistant is not None:  # the assistant's Markdown is rendered, its HTML shown as text
        bot = page.locator('#chat [data-testid="bot"]').last
        assert bot.locator("strong").inner_text() == "大事"
        assert bot.locator("code").inner_text() == "<b>"
        assert "<img src=y>" in bot.inner_text() and bot.locator("img").count() == 0, bot.inner_html()
    page.wait_for_timeout(300)
    assert fetched == [], f"the page fetched {fetched}"


def test_a_long_paste_is_explained_and_stays_in_a_sane_box(app, launch, capfd, caplog):
    if not app.offline:
        pytest.skip("checked once, offline")
    caplog.set_level(logging.INFO, logger="web.page")
    page, _ = open_page(launch(None), app.url)
    pasted = "長い文章です。" * 400  # 2800 characters
    box = message_box(page)
    box.fill(pasted)
    box.press("Enter")
    page.get_by_text("2000文字以内にしてください").wait_for(timeout=5_000)
    assert any(f"{len(pasted)}文字" in t for t in toasts(page)), toasts(page)
    assert box.input_value() == pasted, "the text box cut or dropped the paste"
    assert box.bounding_box()["height"] < 200, box.bounding_box()
    assert chat_messages(page) == []
    rejections = [r for r in caplog.records if r.name == "web.page"]
    assert len(rejections) == 1 and rejections[0].exc_info is None, rejections
    assert "Traceback" not in capfd.readouterr().err


def test_the_chat_trash_icon_starts_a_new_conversation(app, launch, capfd):
    if not app.offline:
        pytest.skip("checked once, offline")
    page, hashes = open_page(launch(None), app.url)
    send_text(page, "こんにちは")
    wait_for_chat(page, lambda m: len(m) >= 2 and m[-1][0] == "assistant", 15, "a first answer")
    old = app.conversation_of(hashes.current)
    click(page.get_by_role("button", name="会話をクリア"))
    wait_until(page, lambda: old.closed, 5, "the old conversation closed by the trash icon")
    page.wait_for_timeout(1000)
    assert chat_messages(page) == [], "the cleared messages came back"
    new = app.conversation_of(hashes.current)
    assert new is not old and not new.transcript.items

    send_text(page, "もう一度")
    wait_for_chat(page, lambda m: len(m) >= 2 and m[-1][0] == "assistant", 15, "an answer in the new conversation")
    click(page.get_by_role("button", name="新しい会話"))
    wait_until(page, lambda: new.closed, 5, "「新しい会話」 closed the conversation")
    wait_for_chat(page, lambda m: m == [], 5, "an empty chat after 「新しい会話」")
    assert "Warning" not in capfd.readouterr().err


@pytest.fixture(autouse=True)
def fresh_rules(app):
    if app.assistant is not None:
        app.assistant.rules = {}
