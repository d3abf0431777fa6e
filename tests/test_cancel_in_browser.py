"""Cancelling a running search from the page, in a real headless Chromium (offline engine and the scripted
server): the row shows live progress, a click on it and on the cancel button stops it, and it shows キャンセル."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from conftest import call
from support.browser import (
    browser_test_marks,
    open_page,
    readme_screenshot,
    screenshot,
    send_text,
    tool_table,
    wait_until,
)

if TYPE_CHECKING:
    from support.browser_app import BrowserApp

pytest_plugins = ["support.browser_app"]

pytestmark = browser_test_marks()

SEARCH_SECONDS = 30


@pytest.fixture(scope="module")
def weather():
    """The shared stand-in, with a search slow enough to be cancelled by hand."""
    from support.openmeteo_server import serve_open_meteo

    with serve_open_meteo() as om, pytest.MonkeyPatch.context() as env:
        env.setenv("OPEN_METEO_FORECAST_URL", om.forecast_url)
        env.setenv("OPEN_METEO_GEOCODING_URL", om.geocoding_url)
        env.setenv("SEARCH_LATENCY_SECONDS", str(SEARCH_SECONDS))  # read once when the app starts
        env.setenv("TOOL_UPDATE_SECONDS", "0")
        yield om


def test_a_running_search_is_cancelled_from_the_page(app: BrowserApp, launch):
    if app.assistant is not None:
        app.assistant.rules = {r"(\w+)について": lambda m: [call("search_database", query=m[1])],
                               r"やめて": lambda m: [call("cancel_tool", tool="search_database")]}
    page, _ = open_page(launch(None), app.url)

    def search_rows() -> list[list[str]]:
        return [r for r in tool_table(page) if len(r) == 6 and r[1] == "search_database"]

    send_text(page, "AIについて調べて")
    send_text(page, "機械学習について調べて")
    # Live progress: 「実行中 k/10」 and what the search is doing, while it runs.
    rows = wait_until(page, lambda: (rows := search_rows()) and len(rows) == 2 and all(
        r[3].startswith("実行中 ") and "/10" in r[3] for r in rows) and rows, 10,
        lambda: f"both searches' progress in the table: {tool_table(page)}")
    assert all(r[5].startswith("検索結果を確認しています") for r in rows), rows
    assert "機械学習" in rows[0][2] and "AI" in rows[1][2], rows  # newest first
    # Select the older search's row (a click on one of its cells), then cancel: only that call stops.
    page.locator("#tools table:not([aria-hidden='true']) tbody tr").nth(1).locator("td").nth(1).click()
    cancel = page.get_by_role("button", name="選択したツールをキャンセル")
    if app.offline:
        readme_screenshot(page)  # progress, the selected row and the cancel control
    clicked = time.monotonic()
    cancel.click()
    rows = wait_until(page, lambda: (rows := search_rows()) and rows[1][3] == "キャンセル" and rows, 5,
                      lambda: f"the selected search shows キャンセル: {tool_table(page)}")
    assert time.monotonic() - clicked < 5
    assert rows[0][3].startswith("実行中"), rows  # the other search goes on
    assert page.get_by_text("1件のツールをキャンセルしました（search_database）。").is_visible()
    assert float(rows[1][4]) < SEARCH_SECONDS / 2, rows  # stopped, not run to its end
    # With no row selected, the button stops every running call.
    cancel.click()
    wait_until(page, lambda: [r[3] for r in search_rows()] == ["キャンセル", "キャンセル"], 5,
               lambda: f"both searches show キャンセル: {tool_table(page)}")
    # By voice or text, as the model's cancel_tool: 「やっぱり検索はやめて」.
    send_text(page, "データについて調べて")
    wait_until(page, lambda: len(search_rows()) == 3 and search_rows()[0][3].startswith("実行中"), 10,
               lambda: f"a third search running: {tool_table(page)}")
    send_text(page, "やっぱり検索はやめて")
    wait_until(page, lambda: [r[3] for r in search_rows()] == ["キャンセル"] * 3, 10,
               lambda: f"the third search cancelled by the model: {tool_table(page)}")
    assert tool_table(page)[0][1] == "cancel_tool"
    if app.offline:  # the assistant tells it in words
        wait_until(page, lambda: page.get_by_text("検索を中止しました。").count() >= 3, 10,
                   "検索を中止しました three times")
    screenshot(page, f"{app.mode}-search-cancelled")
