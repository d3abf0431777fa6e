"""Reliability under network flaps, tool faults and bad input: short versions of the soaks in benchmarks/.

Each runs the app (or a conversation) against the local Realtime server over real sockets. The long
runs are opt-in: `python -m pytest -m soak` (or `python benchmarks/soak_*.py`, which print figures).
"""

from __future__ import annotations

import re

import httpx
import pytest
from support.apphost import running_app
from support.browser import browser_unavailable

from benchmarks.soak_cuts import messages_at_each_cut
from benchmarks.soak_flaps import (
    app_behind_flaps,
    chat_messages,
    messages_through_flaps,
    tools_through_drops,
    voice_through_drops,
)
from benchmarks.soak_input import (
    JAPANESE,
    STILL_FINE,
    expected_reply,
    page_soak,
    raw_chat,
    server_problems,
    soak_api,
    watching_server,
)
from benchmarks.soak_input import run as run_input_soak
from benchmarks.soak_tools import OUTCOMES, soak_tools

REPLY_LIMIT_SECONDS = 10.0


@pytest.fixture
def soak(request):
    """The long runs go only when asked for by name (`-m soak`), whatever other `-m` a run passes."""
    if not re.search(r"(?<!not )\bsoak\b", request.config.getoption("markexpr") or ""):
        pytest.skip("opt-in: python -m pytest -m soak")


# ---- network flaps ------------------------------------------------------------------------------

def test_every_api_message_is_answered_in_time_through_drops():
    with app_behind_flaps(1.0, record=True) as (app, server):
        figures = chat_messages(app.url, 12, max_gap=0.4, limit=REPLY_LIMIT_SECONDS)
        drops = len(server.connections) - 1
    assert drops >= 3, "the service really dropped the connection several times"
    assert figures.unanswered == [] and figures.answered == figures.sent == 12
    assert max(figures.latencies) < REPLY_LIMIT_SECONDS, figures.latencies


async def test_a_long_tool_running_during_a_drop_is_still_told():
    figures = await tools_through_drops(2, tool_seconds=2.0, drop_every=1.2)
    assert figures.drops_during_calls >= 2
    assert figures.told == figures.calls == 2, figures.failures


async def test_a_voice_call_goes_on_through_drops_and_every_utterance_is_answered_aloud():
    figures = await voice_through_drops(seconds=20, drops=2)
    assert figures.drops >= 2
    assert figures.utterances >= 2 and figures.answered_aloud == figures.utterances, figures.unanswered
    assert figures.call_state == "connected" and not figures.call_closed_by_service


# ---- tool faults --------------------------------------------------------------------------------

async def test_random_tool_outcomes_across_conversations_each_end_once_and_leave_nothing_running():
    figures = await soak_tools(outcomes=70, conversations=3, rounds=2, seed=11)
    assert figures.problems == []
    assert set(figures.outcomes) == set(OUTCOMES)
    assert figures.calls >= 60 and sum(figures.statuses.values()) == figures.calls
    assert {"done", "failed", "timeout", "cancelled"} <= set(figures.statuses)
    assert figures.leftover_tasks == []


# ---- bad input ----------------------------------------------------------------------------------

def test_generated_bad_input_through_the_api_is_answered_or_refused_in_japanese():
    with watching_server() as (tee, log), running_app("azure-ga") as app:
        figures = soak_api(app.url, 90, workers=3, seed=5, per_conversation=30)
    figures.server_errors += server_problems(tee, log)
    assert figures.wrong == [] and figures.server_errors == []
    assert figures.answered + figures.refused == 90 and figures.refused >= 10
    assert figures.usable_afterwards == figures.conversations == 6


def test_what_only_a_browser_can_send_is_refused_in_japanese_and_the_conversation_goes_on():
    cases = [("絵文字\ud83d", False), ("\udc00", False), ("あ\x00い", True), ("\u200b\ufeff", False),
             ("\u202eمرحبا", True), (STILL_FINE, True)]
    with watching_server() as (tee, log), running_app("azure-ga") as app:
        config = httpx.get(app.url + "config").json()
        chat = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
        for message, answered in cases:
            status, reply, error = raw_chat(app.url, "browser1", message, chat)
            assert status == 200
            if answered:
                assert reply == expected_reply(message), (message, reply, error)
            else:
                assert reply is None and JAPANESE.search(error) and "Traceback" not in error, (message, error)
        conversation = app.registry.peek("browser1")
        assert not conversation.notice and conversation.connected
        assert len(app.server.connections) == 1  # nothing it was given broke its service connection
    assert server_problems(tee, log) == []


@pytest.mark.browser
@pytest.mark.skipif(browser_unavailable() is not None, reason=browser_unavailable() or "")
@pytest.mark.timeout(120)
def test_a_sample_of_bad_input_through_the_page():
    with watching_server() as (tee, log), running_app("azure-ga") as app:
        result = page_soak(app, 14)
    assert result.get("answered", 0) + result.get("refused", 0) == 14 and result.get("refused", 0) >= 3, result
    assert result.get("usable_afterwards") == 1 and not result.get("refused_text_lost"), result
    assert server_problems(tee, log) == []


# ---- the long runs (opt-in) -----------------------------------------------------------------------

@pytest.mark.soak
@pytest.mark.timeout(900)
def test_soak_messages_through_a_drop_every_3_seconds(soak):
    normal, flapping = messages_through_flaps(100, 3.0)
    print(normal.line("no drops"), flapping.line("a drop every 3 s"), sep="\n")
    assert flapping.complete == flapping.sent == 100, flapping.unanswered  # whole answers, not fragments
    assert max(flapping.latencies) < REPLY_LIMIT_SECONDS
    for label, figures in messages_at_each_cut(10).items():
        print(figures.line(f"cut at {label}"))
        assert figures.complete == figures.sent == 10, (label, figures.unanswered)
        assert max(figures.latencies) < REPLY_LIMIT_SECONDS, (label, figures.latencies)


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_soak_a_5_minute_voice_call_through_20_drops(soak):
    figures = await voice_through_drops(300, 20)
    print(figures.line())
    assert figures.drops >= 20 and figures.answered_aloud == figures.utterances, figures.unanswered
    assert figures.call_state == "connected" and not figures.call_closed_by_service
    tools = await tools_through_drops(10)
    print(tools.line())
    assert tools.told == tools.calls, tools.failures


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_soak_1000_tool_outcomes(soak):
    figures = await soak_tools(1000, conversations=4, rounds=4)
    print(figures.line())
    assert figures.problems == [] and figures.leftover_tasks == []
    assert figures.memory_kib[-1] - figures.memory_kib[1] < 1024, figures.memory_kib


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_10000_generated_messages(soak):
    # Against a service that keeps nothing (no recording), so what grows is the app's.
    figures = run_input_soak(10_000, workers=6, page_sample=40 if browser_unavailable() is None else 0)
    print(figures.line(), figures.page, sep="\n")
    assert figures.wrong == [] and figures.server_errors == []
    assert figures.usable_afterwards == figures.conversations


def test_the_default_run_leaves_the_soak_out(pytestconfig):
    assert pytestconfig.getini("addopts")[-2:] == ["-m", "not soak"]
