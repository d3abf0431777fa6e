"""Soak: voice calls that end abruptly, one after another, and what they leave behind.

Each call is a real aiortc peer in a page of its own (its own Gradio session, its heartbeat stream held open as
a browser tab does). None of them presses Stop; they end in turn as a tab that is killed mid-answer (the peer
connection and the page go at once), a page that closes while its peer goes on sending, and a caller whose
microphone freezes as the page closes. Afterwards nothing of them may remain: voice slots, live conversations,
service connections, running tasks; and the process's memory comes back to where it started.

Run: python benchmarks/soak_voice_calls.py [--calls 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ScriptedAssistant, ToneVoice  # noqa: E402
from support.apphost import RunningApp, running_app  # noqa: E402
from support.webrtc_client import VoiceClient  # noqa: E402

from audio import rms  # noqa: E402

ENDINGS = ("killed mid-answer", "page closed, peer still sending", "microphone frozen, page closed")
# How long the app may take to let go of everything after the last call: Gradio's heartbeat of a closed page
# leaves its 15 s sleep running (gradio/routes.py heartbeat); it ends by itself.
SETTLE_SECONDS = 20.0


def pending_tasks() -> Counter[str]:
    """Unfinished asyncio tasks of every loop in the process (the app's and the callers'), by name."""
    gc.collect()
    # type(), not isinstance(): isinstance reads `__class__`, which loads the openai SDK's lazy module proxies
    # (about 1,300 modules, ~20 MB) and would be measured as growth.
    return Counter(task_name(o) for o in gc.get_objects() if issubclass(type(o), asyncio.Task) and not o.done())


def task_name(task: asyncio.Task) -> str:
    """A task's own name, or (for an unnamed one) what it runs."""
    name = task.get_name()
    return getattr(task.get_coro(), "__qualname__", name) if name.startswith("Task-") else name


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class VoiceSoakFigures:
    calls: int = 0
    answered_aloud: int = 0
    seconds_per_call: list[float] = field(default_factory=list)
    voice_slots: int = 0  # after the run: slots still held
    live_conversations: int = 0  # ... and conversations and service connections beyond those before the run
    service_connections: int = 0
    leaked_tasks: dict[str, int] = field(default_factory=dict)  # unfinished tasks beyond those before the run
    settle_seconds: float = 0.0  # after the last call, until everything above was let go
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_before_mb

    def line(self) -> str:
        return (f"voice calls: {self.calls} ended abruptly ({self.answered_aloud} mid-answer),"
                f" median {statistics.median(self.seconds_per_call):.2f} s a call; afterwards voice slots"
                f" {self.voice_slots}, live conversations {self.live_conversations}, service connections"
                f" {self.service_connections}, leaked tasks {sum(self.leaked_tasks.values())}"
                f" {dict(self.leaked_tasks) or ''} (all let go {self.settle_seconds:.1f} s after the last call);"
                f" RSS {self.rss_before_mb:.1f} → {self.rss_after_mb:.1f} MB ({self.rss_growth_mb:+.1f} MB)")


def held(app: RunningApp) -> tuple[int, int, int]:
    """Voice slots, live conversations and service connections the app holds."""
    return app.registry.voice_calls, app.registry.live, app.server.open_connections


async def within(predicate, seconds: float) -> bool:
    """Whether `predicate()` holds within `seconds` (the app lets go on its own schedule)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not predicate():
                await asyncio.sleep(0.05)
            return True
    return False


async def one_call(app: RunningApp, n: int, loop: asyncio.AbstractEventLoop) -> bool:
    """Open a page and a call, and end both abruptly (the n-th ending); True if the answer was heard first."""
    client = VoiceClient(app.url, f"soak{n:03d}")
    heard = False
    try:
        async with client.page_open():
            answer = await client.connect()
            assert answer.get("sdp"), answer
            assert await within(lambda: app.registry.voice_calls == 1, 10), "the call was never placed"
            ending = ENDINGS[n % len(ENDINGS)]
            if ending == "killed mid-answer":
                client.microphone.play(ToneVoice.tone("こんにちは"))
                started = loop.time()
                heard = await within(lambda: rms(client.received_audio(since=started)) > 500, 10)
                await client.close()  # no Stop: the tab dies with the page below
            elif ending == "microphone frozen, page closed":
                client.microphone.stall()
        # The page is gone here (its heartbeat stream ended).
        if ending == "page closed, peer still sending":  # only the page's unload can end this call
            assert await within(lambda: app.registry.voice_calls == 0, 5), "the closed page's call went on"
    finally:
        await client.close()
    return heard


async def soak_voice_calls(app: RunningApp, calls: int) -> VoiceSoakFigures:
    loop = asyncio.get_running_loop()
    baseline = held(app)  # other pages of the app may be open: only what the soak leaves counts
    for n in range(len(ENDINGS)):  # warm-up, one call of each ending: what the first calls load is not a leak
        await one_call(app, 1000 + n, loop)
    await within(lambda: held(app) == baseline, SETTLE_SECONDS)
    before = pending_tasks()
    figures = VoiceSoakFigures(rss_before_mb=rss_mb())
    for n in range(calls):
        started = loop.time()
        figures.answered_aloud += await one_call(app, n, loop)
        figures.calls += 1
        figures.seconds_per_call.append(loop.time() - started)
    ended = loop.time()
    await within(lambda: held(app) == baseline and not pending_tasks() - before, SETTLE_SECONDS)
    figures.settle_seconds = loop.time() - ended
    figures.voice_slots, figures.live_conversations, figures.service_connections = (
        now - then for now, then in zip(held(app), baseline, strict=True))
    figures.leaked_tasks = dict(pending_tasks() - before)
    figures.rss_after_mb = rss_mb()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    growths = []
    with running_app("azure-ga", ScriptedAssistant()) as app:
        app.server.record = False  # the service keeps nothing: what grows is the app's
        for run in range(args.runs):
            figures = await soak_voice_calls(app, args.calls)
            growths.append(figures.rss_growth_mb)
            print(f"run {run + 1}: {figures.line()}", flush=True)
    print(f"RSS growth per run of {args.calls} calls: median {statistics.median(growths):+.1f} MB,"
          f" runs {[round(g, 1) for g in growths]}")


if __name__ == "__main__":
    asyncio.run(main())
