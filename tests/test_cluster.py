"""deploy/cluster.py for real: redis-server, two app.py replicas and HAProxy on loopback, against the local
Realtime server (one per test, on its own thread); clients only talk to the balancer (and, once, to a replica)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from support.clusterhost import RECALL, alive, start_cluster, start_realtime_server
from support.webrtc_client import VoiceClient

from audio import SAMPLE_RATE, rms
from deploy.balancer import sticky_sessions
from shared_state.voice_slots import SLOT_SECONDS

NAMES = ["さくら", "たろう", "はなこ", "じろう"]

pytestmark = pytest.mark.skipif(not (shutil.which("haproxy") and shutil.which("redis-server")),
                                reason="haproxy と redis-server が必要です（apt-get install -y haproxy redis-server）")


def tone(seconds: float = 0.8) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)


async def heard_an_answer(client: VoiceClient, timeout: float = 15) -> None:
    """Speak, and wait until the answer comes back aloud (non-silent audio after speaking)."""
    spoke = asyncio.get_running_loop().time()
    client.microphone.play(tone())
    async with asyncio.timeout(timeout):
        while rms(client.received_audio(since=spoke + 1.0)) < 300:
            await asyncio.sleep(0.1)


async def refused(client: VoiceClient) -> str:
    assert (await client.connect()).get("sdp")
    async with asyncio.timeout(10):
        while not (warnings := [m for m in client.messages if m.get("type") == "warning"]):
            await asyncio.sleep(0.05)
    return warnings[0]["message"]


async def test_cluster_balances_limits_voice_and_survives_a_replica(tmp_path):
    cluster = start_cluster(tmp_path, start_realtime_server())
    try:
        # Four API clients, each its own conversation on one replica, both replicas used.
        clients = await asyncio.gather(*(asyncio.to_thread(Client, cluster.url, verbose=False) for _ in NAMES))
        answers = await asyncio.gather(*(asyncio.to_thread(c.predict, f"私は{n}です", api_name="/chat")
                                         for c, n in zip(clients, NAMES, strict=True)))
        assert answers == [f"echo:私は{n}です" for n in NAMES]
        placed = sticky_sessions(cluster.socket)
        where = {c.session_hash: placed[c.session_hash] for c in clients}
        assert set(where.values()) == set(cluster.replicas), f"the balancer used one replica only: {where}"

        # A voice call through the balancer (offer, ticks and media on one replica) is answered aloud.
        first = VoiceClient(cluster.url)
        assert (await first.connect()).get("sdp")
        await heard_an_answer(first)
        host = sticky_sessions(cluster.socket)[first.session_hash]
        other = next(name for name in cluster.replicas if name != host)
        # The cluster allows one call: a second one is refused through the balancer, and on the other replica.
        second, third = VoiceClient(cluster.url), VoiceClient(cluster.replicas[other][0])
        try:
            assert "上限（1）" in await refused(second)
            assert "上限（1）" in await refused(third)
        finally:
            await second.close()
            await third.close()

        # The replica holding the call dies; every client's next message is answered elsewhere, with its context.
        on_dead = [c for c in clients if where[c.session_hash] == host]
        assert on_dead, where
        os.kill(cluster.replicas[host][1], signal.SIGKILL)
        killed_at = time.monotonic()
        await first.close()
        answers = await asyncio.gather(*(asyncio.to_thread(c.predict, RECALL, api_name="/chat") for c in clients))
        assert answers == [f"覚えています:私は{n}です" for n in NAMES]
        assert all(sticky_sessions(cluster.socket)[c.session_hash] == other for c in clients)
        # Usage went on from where the dead replica left it: both responses are counted.
        usage = await asyncio.to_thread(on_dead[0].predict, api_name="/usage")
        assert usage["totals"]["responses"] == 2

        # The dead replica's voice slot comes back by itself: a new call is placed and answered.
        await asyncio.sleep(max(0.0, killed_at + SLOT_SECONDS + 1 - time.monotonic()))
        fourth = VoiceClient(cluster.url)
        try:
            assert (await fourth.connect()).get("sdp")
            await heard_an_answer(fourth)
            assert not [m for m in fourth.messages if m.get("type") == "warning"]
        finally:
            await fourth.close()
    finally:
        code = cluster.stop()
    output = cluster.log.read_text(encoding="utf-8")
    assert code == 0, output
    # aiortc itself logs one when a refused call's stream closes (as in one process): nothing else may
    assert output.count("Traceback") == output.count("RTCRtpsender(audio) Traceback"), output
    assert not [pid for pid in cluster.pids if alive(pid)], "a process outlived the cluster"


def test_a_rolling_restart_ends_no_conversation(tmp_path):
    """SIGHUP restarts the replicas one by one while clients keep talking. A message sent at the very moment its
    replica is taken out may fail (its request and its results are two HTTP requests; HAProxy moves the
    session between them); every other one is answered, and every conversation keeps its whole context."""
    cluster = start_cluster(tmp_path, start_realtime_server())
    try:
        clients = [Client(cluster.url, verbose=False) for _ in NAMES]
        for client, name in zip(clients, NAMES, strict=True):
            assert client.predict(f"私は{name}です", api_name="/chat") == f"echo:私は{name}です"
        cluster.proc.send_signal(signal.SIGHUP)
        answered: list[list[str]] = [[] for _ in NAMES]
        sent, failed = 0, 0
        while "app2 is back" not in cluster.log.read_text(encoding="utf-8"):
            assert cluster.proc.poll() is None and sent < 800, cluster.log.read_text(encoding="utf-8")
            for client, got in zip(clients, answered, strict=True):
                text, sent = f"途中{sent}", sent + 1
                try:
                    assert client.predict(text, api_name="/chat") == f"echo:{text}"
                    got.append(text)
                except Exception:  # at the switch (see above): the client sends its next message
                    failed += 1
        assert failed <= 2 and sent - failed >= 20, (sent, failed)
        for client, name, got in zip(clients, NAMES, answered, strict=True):
            recalled = client.predict(RECALL, api_name="/chat").removeprefix("覚えています:").split("／")
            assert recalled[0] == f"私は{name}です"
            assert [t for t in recalled if t in got] == got  # every answered message, in order
    finally:
        code = cluster.stop()
    output = cluster.log.read_text(encoding="utf-8")
    assert code == 0, output
    assert "app1 is back" in output, output
    restarted = [int(pid) for pid in re.findall(r"is back \(pid (\d+)\)", output)]
    assert not [pid for pid in cluster.pids + restarted if alive(pid)], "a process outlived the cluster"


def test_each_replica_keeps_its_own_knowledge_index(monkeypatch, tmp_path):
    """Replicas on one host sharing one index would rebuild and lock it under each other (one writer each)."""
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "deploy"))
    sys.modules.pop("cluster", None)
    import cluster

    monkeypatch.setenv("SEARCH_DB_PATH", str(tmp_path / "kb.sqlite3"))
    assert [cluster.replica_index(n) for n in ("app1", "app2")] == [tmp_path / "kb-app1.sqlite3",
                                                                     tmp_path / "kb-app2.sqlite3"]
