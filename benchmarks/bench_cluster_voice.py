"""Voice calls held through HAProxy with 1, 2 and 4 replicas (deploy/cluster.py, Redis included).

Loopback only, as bench_cluster.py: the local Realtime server (the tests' stand-in: it hears a turn end after
700 ms of quiet and answers "echo:こんにちは", spoken by ToneVoice as 0.6 s of 440 Hz) runs on a thread here; the
callers run in a process of their own (off the stand-in's GIL). K (`--calls`) real aiortc peers offer through the
balancer at once, wait until the page has placed the call, and speak `--turns` turns (0.78 s of tone each, in real
time), each after the answer to the last one was heard and ended. Per call, from what the caller receives only:

- answered aloud: every turn's answer came back as audible frames (RMS >= 300) within ANSWER_SECONDS;
- underruns, inside an answer (its first to its last audible frame), for a speaker modelled as a browser's: it
  starts JITTER_SECONDS after the first audible frame arrived and plays each frame for its length (20 ms); a frame
  arriving after its turn to play is an underrun (play goes on from it, later), and so is each run of silent
  frames (silence inserted mid-answer). Frames every 20 ms make none; one 80+ ms after the one before makes one.
  Held = answered aloud with no underrun;
- first-answer latency: end of the first turn's speech (the microphone finished playing it) to the first audible
  frame of its answer; the stand-in's 700 ms turn detection included;
- CPU s per call-second: user + system CPU time of the replica processes (/proc/<pid>/stat) during a round over
  the seconds its calls were connected; the same for the callers' process (their aiortc peers).

Held calls and CPU are medians of `--rounds` rounds; latencies are pooled over rounds. Everything (replicas,
HAProxy, Redis, the stand-in, the callers) shares this machine's cores, so a late frame can be the callers' own
loop running late: a 10 ms ticker watches it, and late frames that overlap one of its stalls are counted apart.

Run: python benchmarks/bench_cluster_voice.py [--replicas 1 2 4] [--calls 2 4 8] [--turns 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ToneVoice  # noqa: E402
from support.clusterhost import RunningCluster, start_cluster, start_realtime_server  # noqa: E402
from support.webrtc_client import RATE, VoiceClient  # noqa: E402

from audio import SAMPLE_RATE, rms  # noqa: E402

SPEECH = ToneVoice.tone("あいうえおかきくけこさしす")  # 0.78 s of 440 Hz: a turn the stand-in's detector hears
SPEECH_SECONDS = SPEECH.size / SAMPLE_RATE
AUDIBLE_RMS = 300.0
JITTER_SECONDS = 0.060  # what the modelled speaker holds before it plays an answer (a browser's jitter buffer)
ANSWER_SECONDS = 15.0  # a turn's answer must begin within this
ANSWER_ENDED_SECONDS = 0.5  # no audible frame for this long after one: the answer is over
TICK_SECONDS = 0.010


@dataclass
class CallFigures:
    answered: int = 0  # turns answered aloud
    late: list[tuple[float, float]] = field(default_factory=list)  # (due, arrived) of frames the speaker lacked
    silences: int = 0  # runs of silent frames inside answers
    first_latency: float | None = None
    seconds: float = 0.0  # connected

    @property
    def underruns(self) -> int:
        return len(self.late) + self.silences


@dataclass
class RoundFigures:
    calls: list[CallFigures]
    cpu_seconds: float  # the replicas'
    callers_cpu_seconds: float
    stalls: list[tuple[float, float]]  # the callers' loop: (woke at, seconds late) of a 10 ms ticker

    def on_callers(self) -> int:
        """Late frames whose lateness overlaps a stall of the callers' own loop (perhaps the callers' doing)."""
        return sum(any(woke - late < arrived and woke > due for woke, late in self.stalls)
                   for call in self.calls for due, arrived in call.late)

    def held(self, turns: int) -> int:
        return sum(c.answered == turns and not c.underruns for c in self.calls)

    def per_call_second(self, cpu_seconds: float) -> float:
        return cpu_seconds / max(1e-9, sum(c.seconds for c in self.calls))


def audible(samples: np.ndarray) -> bool:
    return rms(samples) >= AUDIBLE_RMS


def underruns(frames: list[tuple[float, np.ndarray]], figures: CallFigures) -> None:
    """Add the frames too late for the modelled speaker, and the runs of silent frames, between the first and the
    last audible frame of one answer (see the module's docstring)."""
    loud = [i for i, (_, samples) in enumerate(frames) if audible(samples)]
    if not loud:
        return
    silent_before = False
    due = frames[loud[0]][0] + JITTER_SECONDS  # when the speaker needs the next frame
    for at, samples in frames[loud[0] : loud[-1] + 1]:
        if at > due:
            figures.late.append((due, at))
            due = at
        due += samples.size / RATE
        silent = not audible(samples)
        figures.silences += silent and not silent_before
        silent_before = silent


async def answer_heard(client: VoiceClient, since: float) -> float | None:
    """Wait for an answer after `since` to be heard and to end; the arrival time of its first audible frame,
    or None when none began in time or the call was refused (a warning on the data channel)."""
    loop = asyncio.get_running_loop()
    while True:
        loud = [at for at, samples in client.received if at >= since and audible(samples)]
        if loud and loop.time() - loud[-1] > ANSWER_ENDED_SECONDS:
            return loud[0]
        if any(m.get("type") == "warning" for m in client.messages) or (
                not loud and loop.time() - since > ANSWER_SECONDS):
            return None
        await asyncio.sleep(0.05)


class Caller(VoiceClient):
    """A VoiceClient that also knows when its page has joined the tick event the server asked for."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.joined = asyncio.Event()

    async def _join(self, fn_index: int, data: list) -> str:
        event_id = await super()._join(fn_index, data)
        self.joined.set()
        return event_id

    async def placed(self) -> bool:
        """Wait until the tick event (it places the call on the server, web/voice.py) has completed, as a browser
        sees it on the queue's data stream: microphone audio before that reaches no conversation."""
        url = f"{self.base}/gradio_api/queue/data"
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(ANSWER_SECONDS), httpx.AsyncClient(timeout=ANSWER_SECONDS) as http:
                await self.joined.wait()  # before that the server has no queue for this page: 404
                async with http.stream("GET", url, params={"session_hash": self.session_hash}) as stream:
                    async for line in stream.aiter_lines():
                        if '"process_completed"' in line:
                            return True
        return False


async def one_call(url: str, turns: int) -> CallFigures:
    loop = asyncio.get_running_loop()
    figures, client = CallFigures(), Caller(url)
    started = loop.time()
    try:
        if not (await client.connect()).get("sdp") or not await client.placed():
            return figures
        for turn in range(turns):
            spoke = loop.time()
            client.microphone.play(SPEECH)
            first = await answer_heard(client, spoke)
            if first is None:
                break
            figures.answered += 1
            underruns([(at, samples) for at, samples in client.received if at >= spoke], figures)
            if turn == 0:
                figures.first_latency = first - (spoke + SPEECH_SECONDS)
    finally:
        await client.close()
        figures.seconds = loop.time() - started
    return figures


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (all their threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


async def callers(url: str, calls: int, turns: int) -> tuple[list[CallFigures], list[tuple[float, float]]]:
    """The calls at once, and (woke at, seconds late) of each 10 ms tick of this loop that came over 20 ms late."""
    loop, late = asyncio.get_running_loop(), []
    calling = asyncio.gather(*(one_call(url, turns) for _ in range(calls)))
    while not calling.done():
        due = loop.time() + TICK_SECONDS
        await asyncio.wait([calling], timeout=TICK_SECONDS)
        if (woke := loop.time()) - due > 0.020:
            late.append((woke, woke - due))
    return calling.result(), late


def run_callers(url: str, calls: int, turns: int) -> tuple[list[CallFigures], list[tuple[float, float]], float]:
    """In the callers' process; also the CPU time it took."""
    before = os.times()
    figures, late = asyncio.run(callers(url, calls, turns))
    after = os.times()
    return figures, late, after.user - before.user + after.system - before.system


async def one_round(cluster: RunningCluster, pool: ProcessPoolExecutor, calls: int, turns: int) -> RoundFigures:
    pids = [pid for _, pid in cluster.replicas.values()]
    before, loop = cpu_seconds(pids), asyncio.get_running_loop()
    figures, late, own = await loop.run_in_executor(pool, run_callers, cluster.url, calls, turns)
    return RoundFigures(figures, cpu_seconds(pids) - before, own, late)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def row(replicas: int, calls: int, turns: int, rounds: list[RoundFigures]) -> str:
    held = statistics.median(r.held(turns) for r in rounds)
    answered = statistics.median(sum(c.answered == turns for c in r.calls) for r in rounds)
    gaps = statistics.median(sum(c.underruns for c in r.calls) for r in rounds)
    latencies = [c.first_latency for r in rounds for c in r.calls if c.first_latency is not None]
    latency = f"{statistics.median(latencies):6.2f} {p95(latencies):6.2f}" if latencies else f"{'-':>6} {'-':>6}"
    cpu = statistics.median(r.per_call_second(r.cpu_seconds) for r in rounds)
    callers_cpu = statistics.median(r.per_call_second(r.callers_cpu_seconds) for r in rounds)
    on_callers = statistics.median(r.on_callers() for r in rounds)
    return (f"{replicas:>6} {calls:>4} {held:>4g}/{calls:<3} {answered:>4g}/{calls:<3} {gaps:>6g} {on_callers:>6g} "
            f"{latency} {cpu:>9.3f} {callers_cpu:>9.3f}")


HEADER = ("レプリカ 通話 途切れなし 応答あり 途切れ うち呼出側 初回応答(秒)中央値 p95 CPU秒/通話秒(レプリカ 呼出側)\n"
          "(途切れ: 回答中、60 ms ためてから再生するスピーカーが音切れした回数と無音の挿入の数、回の中央値。\n"
          " うち呼出側: 遅れが呼び出し側プロセス自身の遅れと重なったもの)")


async def measure(replicas: int, calls: list[int], turns: int, rounds: int, realtime_url: str,
                  pool: ProcessPoolExecutor) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-voice-") as workdir:
        # Twice the most calls: slots of a round's closing calls may still be held as the next round begins.
        cluster = await asyncio.to_thread(start_cluster, Path(workdir), realtime_url, replicas,
                                          voice_limit=2 * max(calls))
        try:
            await one_round(cluster, pool, replicas, 1)  # warm-up: what the first calls load is not measured
            for count in calls:
                figures = [await one_round(cluster, pool, count, turns) for _ in range(rounds)]
                print(row(replicas, count, turns, figures), flush=True)
        finally:
            await asyncio.to_thread(cluster.stop)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--calls", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = start_realtime_server()
    print(f"{os.cpu_count()} コア、通話ごとに {args.turns} 往復 × {args.rounds} 回")
    print(HEADER)
    # spawn, not fork: this process runs the stand-in's thread
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for replicas in args.replicas:
            await measure(replicas, args.calls, args.turns, args.rounds, url, pool)


if __name__ == "__main__":
    asyncio.run(main())
