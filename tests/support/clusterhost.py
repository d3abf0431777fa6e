"""Run deploy/cluster.py as a user would (a subprocess), against the local Realtime server on a thread here."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import API_KEY, ToneVoice

from offline.engine import ResponseContext, Say
from offline.runtime import serve_in_thread
from offline.server import RealtimeServer
from offline.speech import EnergySpeechDetector
from support.apphost import free_port

ROOT = Path(__file__).resolve().parents[2]
RECALL = "さっき何と言いましたか"
START_SECONDS = 100.0


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


def start_realtime_server() -> str:
    """The local Realtime server (a RecallingAssistant per service session); returns its URL."""
    server = RealtimeServer(RecallingAssistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
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


    def stop(self) -> int:
        """SIGTERM, as Ctrl-C or a service manager stops it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def start_cluster(workdir: Path, realtime_url: str, replicas: int = 2, voice_limit: int = 1) -> RunningCluster:
    """`python deploy/cluster.py` in `workdir` (a scratch dir, so no developer .env is read); returns once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_OPENAI_", "OPENAI_", "APP_", "REDIS_"))}
    env.update({"REALTIME_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{realtime_url}/v1",
                "MAX_VOICE_SESSIONS": str(voice_limit), "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"})
    log = workdir / "cluster.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "cluster.py"), "--replicas", str(replicas),
                                 "--port", str(free_port())], stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_SECONDS
    while "admin socket" not in log.read_text(encoding="utf-8"):
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, "the cluster did not start:\n" + log.read_text(encoding="utf-8")
        time.sleep(0.3)
    return RunningCluster(proc, log)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


