"""Usage, latency and export on the page, in a real headless Chromium (issue 13): the live line counts
each response and its reply time as the conversation goes, and the conversation downloads as a file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.browser import browser_test_marks, open_page, send_text, wait_until

pytest_plugins = ["support.browser_app"]

pytestmark = browser_test_marks()


def usage_line(page) -> str:
    return page.locator("#usage").inner_text()


def test_the_usage_line_follows_the_conversation_and_it_downloads(app, launch):
    page, _ = open_page(launch(None), app.url)
    assert "応答 0 回" in usage_line(page)
    for n, text in enumerate(("こんにちは", "ありがとう"), start=1):
        send_text(page, text)
        wait_until(page, lambda n=n: f"応答 {n} 回" in usage_line(page), 20, lambda: usage_line(page))
    line = usage_line(page)
    assert re.search(r"テキスト \d+\.\d\d 秒", line), line  # message → first text, the median so far
    tokens = int(re.search(r"入力 ([\d,]+) トークン", line).group(1).replace(",", ""))
    assert tokens > 0, line
    assert ("料金なし（オフライン）" if app.offline else "料金不明") in line  # the scripted model has no price

    with page.expect_download() as markdown:
        page.locator("#export-markdown").click()
    saved = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert markdown.value.suggested_filename.endswith(".md")
    assert saved.startswith("# 会話の記録") and "こんにちは" in saved and "ありがとう" in saved
    with page.expect_download() as raw:
        page.locator("#export-json").click()
    record = json.loads(Path(raw.value.path()).read_text(encoding="utf-8"))
    assert record["usage"]["totals"]["responses"] == 2
    assert record["usage"]["totals"]["input_tokens"] == tokens
