"""Talking while a tool works, and progress and cancelling of the built-in search, through a conversation with
the local Realtime server: the update is a response with instructions of its own, never a user message."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from conftest import call, settings_for

from conversation.conversation import Conversation
from conversation.tool_runner import CallStatus
from settings import load_settings
from tools import Toolbox
from web.labels import progress_label


async def open_conversation(server, search_latency: float, update_after: float) -> Conversation:
    settings = replace(load_settings(), search_latency=search_latency, tool_update_seconds=update_after)
    conversation = Conversation(settings_for(server, "azure-ga"), tools=Toolbox.from_settings(settings))
    conversation.start()
    assert await conversation.wait_connected(5), (conversation.state, conversation.notice)
    return conversation


@pytest.mark.parametrize("update_after", [1.0, 0.0])
async def test_a_long_search_earns_one_spoken_update_as_response_instructions(server, assistant, update_after):
    assistant.rules = {r"調べて": lambda m: [call("search_database", query="AI")]}
    conversation = await open_conversation(server, search_latency=4.0, update_after=update_after)
    try:
        turn = await conversation.send_text("AIについて調べて")
        await asyncio.wait_for(turn.done.wait(), 20)
        record = server.connections[-1]
        updates = [e["response"] for e in record.of_type("response.create") if "instructions" in e["response"]]
        if not update_after:  # 0 turns it off
            assert updates == []
            return
        assert len(updates) == 1, updates  # a 4 s search: one update, the next would wait 20 s
        assert "search_database" in updates[0]["instructions"] and "まだ実行中" in updates[0]["instructions"]
        assert updates[0]["tool_choice"] == "none"
        # The persona stays: response instructions replace the session's for that response.
        assert updates[0]["instructions"].startswith(conversation.settings.voice.instructions)
        said = [c.get("text", "") for e in record.of_type("conversation.item.create")
                if e["item"].get("role") == "user" for c in e["item"]["content"]]
        assert said == ["AIについて調べて"], said  # the update is not the user's words
        assert conversation.tool_updates.sent == 1
    finally:
        await conversation.close()


async def test_the_search_reports_progress_and_stops_when_cancelled(server, assistant):
    assistant.rules = {r"調べて": lambda m: [call("search_database", query="AI")]}
    conversation = await open_conversation(server, search_latency=30.0, update_after=0.0)
    try:
        await conversation.send_text("AIについて調べて")
        async with asyncio.timeout(10), contextlib.aclosing(conversation.updates()) as updates:
            async for snapshot in updates:
                if snapshot.calls and snapshot.calls[0].progress:
                    break
        (search,) = snapshot.calls
        assert (search.progress.done, search.progress.total) == (1, 10)
        assert progress_label(search.progress.done, search.progress.total) == "1/10"
        assert conversation.tools.running_names() == ["search_database"]
        assert conversation.tools.cancel("get_weather") == []
        assert conversation.tools.cancel() == ["search_database"]
        async with asyncio.timeout(5), contextlib.aclosing(conversation.updates()) as updates:
            async for snapshot in updates:
                if snapshot.calls[0].status is CallStatus.CANCELLED and not conversation.tools.running:
                    break
        assert snapshot.calls[0].elapsed() < 10
        assert '"status": "cancelled"' in snapshot.calls[0].output
    finally:
        # Closing right after the cancel, with its answer still asked for, is prompt (it once hung the loop).
        async with asyncio.timeout(5):
            await conversation.close()


@pytest.mark.parametrize(("done", "total", "label"), [(3, 6, "3/6"), (0.5, 1, "50%"), (50, 100, "50/100"),
                                                      (1.5, 3, "50%"), (7, None, "7")])
def test_progress_labels(done, total, label):
    assert progress_label(done, total) == label
