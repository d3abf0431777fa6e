"""Shared state in a real redis-server (loopback), in one process: two registries play two replicas."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import eventually, settings_for
from support.apphost import free_port

from shared_state.replica import SharedState
from shared_state.voice_slots import VoiceSlots
from web.browsers import BrowserSessions
from web.chat import chatbot_messages
from web.labels import SHARED_STORE_DOWN, notice_label

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"),
                                reason="redis-server が必要です（apt-get install -y redis-server）")


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """A fresh, empty Redis (no persistence), as after a restart."""
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def answered(registry: BrowserSessions, owner: str, text: str) -> str:
    conversation = registry.get(owner)
    assert await conversation.wait_connected(5)
    turn = await conversation.send_text(text)
    await asyncio.wait_for(turn.done.wait(), 5)
    return conversation.turn_text(turn)


async def stored(redis_server: RedisServer, owner: str, items: int) -> None:
    """Wait until Redis holds `items` items of the owner's conversation (written as it changes, not at once)."""
    import redis.asyncio

    client = redis.asyncio.Redis(port=redis_server.port, decode_responses=True)
    try:
        async with asyncio.timeout(10):
            while await client.hlen(f"va:conv:{owner}:items") < items:
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def replica(server, redis_server: RedisServer, idle_timeout: float = 600.0) -> BrowserSessions:
    settings = settings_for(server, "openai")
    return BrowserSessions(lambda: settings, idle_timeout=idle_timeout,
                           shared=SharedState(redis_server.url, 3600))


async def test_another_replica_continues_the_conversation_with_its_history_and_usage(server, redis_server):
    first, second = replica(server, redis_server), replica(server, redis_server)
    try:
        assert await answered(first, "page-1", "私はさくらです") == "echo:私はさくらです"
        await stored(redis_server, "page-1", 2)
        # The second replica takes the conversation over: the chat is shown again, the history was replayed
        # to its new service session before anything else, and usage goes on from the first replica's.
        assert await answered(second, "page-1", "続きです") == "echo:続きです"
        taken = second.peek("page-1")
        assert chatbot_messages(taken.transcript.messages()) == [
            {"role": "user", "content": "私はさくらです"}, {"role": "assistant", "content": "echo:私はさくらです"},
            {"role": "user", "content": "続きです"}, {"role": "assistant", "content": "echo:続きです"}]
        replayed = [e["item"] for e in server.connections[-1].received if e.get("type") == "conversation.item.create"]
        assert [i.get("role") for i in replayed[:2]] == ["user", "assistant"]
        assert taken.usage_summary()["totals"]["responses"] == 2
        # A new conversation on purpose is not taken over by anyone.
        await second.reset("page-1")
        third = replica(server, redis_server)
        try:
            assert await answered(third, "page-1", "こんにちは") == "echo:こんにちは"
            assert len(chatbot_messages(third.peek("page-1").transcript.messages())) == 2
        finally:
            await third.close_all()
    finally:
        await first.close_all()
        await second.close_all()


async def test_a_replica_whose_conversation_moved_away_leaves_it_alone_when_its_copy_goes_idle(server, redis_server):
    first = replica(server, redis_server, idle_timeout=1.0)
    second = replica(server, redis_server)
    third = replica(server, redis_server)
    try:
        assert await answered(first, "page-1", "一つ目") == "echo:一つ目"
        await stored(redis_server, "page-1", 2)
        assert await answered(second, "page-1", "二つ目") == "echo:二つ目"  # the session moved (a failed check)
        await stored(redis_server, "page-1", 4)
        await eventually(lambda: first.peek("page-1") is None, 5)  # the first replica closed its idle copy ...
        assert await answered(third, "page-1", "三つ目") == "echo:三つ目"  # ... and the record is still whole
        said = [m["content"] for m in chatbot_messages(third.peek("page-1").transcript.messages())
                if m["role"] == "user"]
        assert said == ["一つ目", "二つ目", "三つ目"]
    finally:
        for registry in (first, second, third):
            await registry.close_all()


async def test_redis_outage_is_one_log_line_and_a_notice_and_the_record_catches_up(server, redis_server, caplog):
    caplog.set_level("INFO")
    first = replica(server, redis_server)
    try:
        assert await answered(first, "page-1", "一つ目") == "echo:一つ目"
        redis_server.stop()
        # Conversations go on in memory; the page says why, the log says it once.
        assert await answered(first, "page-1", "二つ目") == "echo:二つ目"
        assert await answered(first, "page-1", "三つ目") == "echo:三つ目"
        conversation = first.peek("page-1")
        async with asyncio.timeout(5):
            async for snapshot in conversation.updates():
                if notice_label(snapshot.notice) == SHARED_STORE_DOWN:
                    break
        await asyncio.sleep(2.5)  # the writer retries meanwhile
        assert len([r for r in caplog.records if "Redis に接続できません" in r.getMessage()]) == 1
        # Redis comes back empty (restarted): everything is written again, and another replica can take over.
        redis_server.start()
        async with asyncio.timeout(10):
            async for snapshot in conversation.updates():
                if notice_label(snapshot.notice) != SHARED_STORE_DOWN:
                    break
        await stored(redis_server, "page-1", 6)
        second = replica(server, redis_server)
        try:
            assert await answered(second, "page-1", "四つ目") == "echo:四つ目"
            said = [m["content"] for m in chatbot_messages(second.peek("page-1").transcript.messages())
                    if m["role"] == "user"]
            assert said == ["一つ目", "二つ目", "三つ目", "四つ目"]
        finally:
            await second.close_all()
    finally:
        await first.close_all()


async def test_the_voice_limit_holds_across_replicas_while_the_heartbeat_renews_it(redis_server):
    from shared_state.store import SharedStore

    one, other = SharedStore(redis_server.url), SharedStore(redis_server.url)
    slots_one = VoiceSlots(one, seconds=1.0, heartbeat=0.3)
    slots_other = VoiceSlots(other, seconds=1.0, heartbeat=0.3)
    try:
        assert await slots_one.claim("call-a", limit=1)
        assert not await slots_other.claim("call-b", limit=1)
        await asyncio.sleep(1.5)  # the heartbeat keeps a live replica's slot
        assert not await slots_other.claim("call-b", limit=1)
        await slots_one.release("call-a")
        assert await slots_other.claim("call-b", limit=1)
    finally:
        await slots_one.close()
        await slots_other.close()
        await one.close()
        await other.close()
