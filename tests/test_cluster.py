"""deploy/cluster.py for real: redis-server, two app.py replicas and HAProxy on loopback, against the local
Realtime server (one per test, on its own thread); clients only talk to the balancer (and, once, to a replica)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from apphost import free_port
from conftest import API_KEY, ToneVoice
from gradio_client import Client
from webrtc_client import VoiceClient

from audio import SAMPLE_RATE, rms
from deploy.balancer import sticky_sessions
from offline.engine import ResponseContext, Say
from offline.runtime import serve_in_thread
from offline.server import RealtimeServer
from offline.speech import EnergyTurnDetector
from shared_state.voice_slots import SLOT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["さくら", "たろう", "はなこ", "じろう"]
RECALL = "さっき何と言いましたか"

pytestmark = pytest.mark.skipif(not (shutil.which("haproxy") and shutil.which("redis-server")),
                                reason="haproxy と redis-server が必要です（apt-get install -y haproxy redis-server）")


def user_text(item: dict) -> str:
    return "".join(p.get("text") or p.get("transcript") or "" for p in item.get("content", []))


class RecallingAssistant:
    """One per service session. Echoes the newest user message; asked RECALL, it lists the user messages
    the service session holds: after a replica died, what the next replica replayed."""

    async def respond(self, context: ResponseContext) -> list[Say]:
        said = [user_text(i) for i in context.items if i.get("type") == "message" and i.get("role") == "user"]
        last = said[-1] if said else ""
        if RECALL in last:
            return [Say("覚えています:" + "／".join(said[:-1]))]
        return [Say(f"echo:{last}")]


@pytest.fixture
def realtime_url():
    server = RealtimeServer(RecallingAssistant, ToneVoice, lambda: EnergyTurnDetector(threshold=500.0),
                            api_key=API_KEY, speed=8.0)

    async def transcribe(_pcm) -> str:
        return "こんにちは"

    server.transcriber = transcribe
    return serve_in_thread(server)


class RunningCluster:
    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc, self.log = proc, log
        text = log.read_text(encoding="utf-8")
        self.url = re.search(r"^serving at (\S+)", text, re.M).group(1)
        self.replicas = {name: (url, int(pid)) for name, url, pid in
                         re.findall(r"^replica (\w+): (\S+) pid (\d+)", text, re.M)}
        self.socket = re.search(r"admin socket (\S+)", text).group(1)
        self.pids = [pid for _, pid in self.replicas.values()] + [int(p) for p in
                                                                  re.findall(r"^(?:redis|haproxy): .*pid (\d+)",
                                                                             text, re.M)]


def start_cluster(tmp_path: Path, realtime_url: str, replicas: int = 2) -> RunningCluster:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI_", "OPENAI_", "APP_", "REDIS_"))}
    env.update({"REALTIME_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{realtime_url}/v1",
                "MAX_VOICE_SESSIONS": "1", "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "cluster.log"
    with log.open("w") as out:  # cwd: a scratch dir, so no developer .env is read
        proc = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "cluster.py"), "--replicas", str(replicas),
                                 "--port", str(free_port())], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 100
    while "admin socket" not in log.read_text(encoding="utf-8"):
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, "the cluster did not start:\n" + log.read_text(encoding="utf-8")
        time.sleep(0.3)
    return RunningCluster(proc, log)


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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_cluster_balances_limits_voice_and_survives_a_replica(tmp_path, realtime_url):
    cluster = start_cluster(tmp_path, realtime_url)
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
        cluster.proc.send_signal(signal.SIGTERM)
        code = cluster.proc.wait(30)
    output = cluster.log.read_text(encoding="utf-8")
    assert code == 0, output
    # aiortc itself logs one when a refused call's stream closes (as in one process): nothing else may
    assert output.count("Traceback") == output.count("RTCRtpsender(audio) Traceback"), output
    assert not [pid for pid in cluster.pids if alive(pid)], "a process outlived the cluster"
