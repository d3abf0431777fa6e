"""Soak: the app through network flaps. The local Realtime server cuts every connection a few seconds
after it opens (no close frame, as a network drop looks), and we measure what a user would notice.

1. messages: typed messages through the API (`gradio_client` `/chat`) at random moments of each
   connection's life; every one must be answered, each within the limit; latency against a normal reply.
   Then the same at each exact point of the exchange (the server cuts the connection there, in both dialects):
   every message must get its whole answer, never the reconnect notice or a fragment.
2. voice: an aiortc peer calls the app and speaks after every reconnect (and once more mid-session);
   every utterance must be answered aloud and the WebRTC call must never end.
3. tools: a long-running tool that is running when the connection drops is still told afterwards.

Loopback only; each part stops by itself and prints its figures.
Run: python benchmarks/soak_flaps.py [--messages 100] [--drop-every 3] [--cuts 5] [--voice-seconds 300]
     [--voice-drops 20] [--parts messages,cuts,tools,voice]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import API_KEY, ScriptedAssistant, ToneVoice, call, settings_for  # noqa: E402
from gradio_client import Client  # noqa: E402
from support.apphost import RunningApp, open_voice, running_app  # noqa: E402
from support.service import InstrumentedServer  # noqa: E402

from audio import rms  # noqa: E402
from conversation.conversation import Conversation  # noqa: E402
from offline.engine import Call, ResponseContext, Say  # noqa: E402
from offline.runtime import serve_in_thread  # noqa: E402
from offline.speech import EnergySpeechDetector  # noqa: E402
from offline.streaming import text_of  # noqa: E402
from settings import load_settings  # noqa: E402
from tools import Toolbox, ToolRegistry  # noqa: E402

ANSWER_PADDING = "、つづき" * 30  # ~150 characters: an answer takes a moment to stream, so drops can cut it


def answer_to(text: str) -> str:
    return f"echo:{text}{ANSWER_PADDING}"


class ReplayAwareAssistant(ScriptedAssistant):
    """Answers each message and each tool output once, like a model that takes a replayed history as
    context: a replayed tool output gets a new item id from the new session, so it is known by its call id."""

    async def respond(self, context: ResponseContext) -> list[Say | Call]:
        items = [{**i, "id": f"output of {i['call_id']}"} if i["type"] == "function_call_output" else i
                 for i in context.items]
        return await super().respond(replace(context, items=items))


class HistoryAssistant(ScriptedAssistant):
    """Answers what the history leaves unanswered, as a model does: every user message and tool output after
    the last assistant message. A response lost to a drop left no answer behind, so its message is answered
    when it is asked again (an assistant that remembers what it was asked would answer it with nothing)."""

    async def respond(self, context: ResponseContext) -> list[Say | Call]:
        self.contexts.append(context)
        items = context.items
        last = max((n for n, i in enumerate(items) if i.get("role") == "assistant"), default=-1)
        outputs: list[Say | Call] = []
        for item in items[last + 1:]:
            if item["type"] == "function_call_output":
                outputs.append(Say(f"result:{item['output']}"))
            elif item["type"] == "message" and item.get("role") == "user":
                outputs += self._answer(text_of(item))
        return outputs or [Say("echo:")]


def flap_assistant() -> ScriptedAssistant:
    return HistoryAssistant({r"^(質問\d+)$": lambda m: [Say(answer_to(m.group(1)))]})


def flap_server(assistant: ScriptedAssistant, drop_every: float | None, *, record: bool = False) -> InstrumentedServer:
    server = InstrumentedServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                                api_key=API_KEY, speed=8.0, record=record, drop_every_seconds=drop_every)

    async def transcribe(_pcm) -> str:
        return "こんにちは"

    server.transcriber = transcribe
    return server


@contextmanager
def app_behind_flaps(drop_every: float | None, *,
                     record: bool = False) -> Iterator[tuple[RunningApp, InstrumentedServer]]:
    """The app as served, its service cutting every connection `drop_every` s after it opens."""
    assistant = flap_assistant()
    server = flap_server(assistant, drop_every, record=record)
    serve_in_thread(server)
    with running_app(settings=settings_for(server, "azure-ga")) as app:
        yield app, server
    # The server's thread is a daemon; it ends with the process.


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class MessageFigures:
    sent: int = 0
    complete: int = 0  # the whole answer arrived
    partial: int = 0  # a drop cut the answer after its first words: settled with what had arrived
    unanswered: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    connections: int = 0

    @property
    def answered(self) -> int:
        return self.complete + self.partial

    def line(self, label: str) -> str:
        return (f"{label}: {self.answered}/{self.sent} answered ({self.complete} complete,"
                f" {self.partial} cut by a drop),"
                f" median {statistics.median(self.latencies):.3f} s, p95 {percentile(self.latencies, 0.95):.3f} s,"
                f" max {max(self.latencies):.3f} s, service connections {self.connections}")


def chat_messages(url: str, count: int, max_gap: float, limit: float, seed: int = 1) -> MessageFigures:
    """Send `count` messages one after another through `/chat`, at random moments; time each reply."""
    rng = random.Random(seed)
    client = Client(url, verbose=False)
    figures = MessageFigures()
    for n in range(count):
        time.sleep(rng.uniform(0, max_gap))
        question = f"質問{n}"
        started = time.monotonic()
        try:
            reply = client.submit(question, api_name="/chat").result(timeout=limit * 3)
        except Exception as exc:  # counted and shown, not raised: the soak reports every failure
            reply = f"<{type(exc).__name__}: {exc}>"
        figures.latencies.append(time.monotonic() - started)
        figures.sent += 1
        expected = answer_to(question)
        if reply == expected:
            figures.complete += 1
        elif len(reply) > len("echo:") and expected.startswith(reply):
            figures.partial += 1
        else:
            figures.unanswered.append(f"{question} → {reply[:80]!r}")
    return figures


def messages_through_flaps(count: int, drop_every: float, max_gap: float = 1.0,
                           limit: float = 10.0) -> tuple[MessageFigures, MessageFigures]:
    """The same messages without drops (a normal reply) and with a drop every `drop_every` s."""
    with app_behind_flaps(None, record=True) as (app, server):
        normal = chat_messages(app.url, max(10, count // 5), max_gap, limit)
        normal.connections = len(server.connections)
    with app_behind_flaps(drop_every, record=True) as (app, server):
        flapping = chat_messages(app.url, count, max_gap, limit)
        flapping.connections = len(server.connections)
    return normal, flapping


@dataclass
class VoiceFigures:
    seconds: float = 0.0
    drops: int = 0
    utterances: int = 0
    answered_aloud: int = 0
    unanswered: list[str] = field(default_factory=list)
    answer_delays: list[float] = field(default_factory=list)  # end of speech → first loud audio back
    call_state: str = ""
    call_closed_by_service: bool = False

    def line(self) -> str:
        delay = f"median {statistics.median(self.answer_delays):.2f} s, max {max(self.answer_delays):.2f} s" \
            if self.answer_delays else "no answers"
        return (f"voice: {self.seconds:.0f} s, {self.drops} drops, {self.answered_aloud}/{self.utterances} utterances"
                f" answered aloud ({delay}), WebRTC call {self.call_state}"
                f"{', ended by the service' if self.call_closed_by_service else ''}")


async def speak_and_hear(client, conversation: Conversation, loop: asyncio.AbstractEventLoop,
                         timeout: float = 6.0) -> float | None:
    """Say something; seconds from the end of speech until the answer is heard (None: not answered aloud)."""
    utterance = ToneVoice.tone("こんにちは、聞こえますか")  # ~0.7 s of tone
    client.microphone.play(utterance)
    spoken_end = loop.time() + utterance.size / 24_000
    await asyncio.sleep(utterance.size / 24_000)
    deadline = spoken_end + timeout
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        heard = client.received_audio(since=loop.time() - 0.2)
        if heard.size and rms(heard) > 500:
            return loop.time() - spoken_end
    return None


async def voice_through_drops(seconds: float, drops: int) -> VoiceFigures:
    """A call of `seconds` through `drops` drops, speaking after each reconnect and once mid-session."""
    drop_every = seconds / drops - 1.0  # each reconnect takes a moment: `drops` drops fit in `seconds`
    figures = VoiceFigures()
    loop = asyncio.get_running_loop()
    with app_behind_flaps(drop_every, record=True) as (app, server):
        client, conversation = await open_voice(app)
        try:
            started = loop.time()
            while loop.time() - started < seconds:
                seen = len(server.connections)
                opened = loop.time()
                await asyncio.sleep(0.3)  # just after the (re)connect
                for label in ("after reconnect", "mid-session"):
                    if loop.time() - opened > drop_every - 4.5:  # no time for a whole exchange before the drop
                        break
                    figures.utterances += 1
                    delay = await speak_and_hear(client, conversation, loop)
                    if delay is None:
                        figures.unanswered.append(f"{label} at {loop.time() - started:.1f} s")
                    else:
                        figures.answered_aloud += 1
                        figures.answer_delays.append(delay)
                    await asyncio.sleep(max(0.0, drop_every / 2 - (loop.time() - opened)))
                while len(server.connections) == seen and loop.time() - started < seconds:
                    await asyncio.sleep(0.05)  # until the next drop has been reconnected
                while not conversation.connected and loop.time() - started < seconds:
                    await asyncio.sleep(0.05)
            figures.seconds = loop.time() - started
            figures.drops = len(server.connections) - 1
            figures.call_state = client.pc.connectionState
            figures.call_closed_by_service = any(m.get("type") in ("end_stream", "error") for m in client.messages) \
                or not conversation.voice_attached
        finally:
            await client.close()
    return figures


def slow_tool_registry(seconds: float) -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool(long_running=True)
    async def slow_lookup(topic: str) -> dict:
        """A slow lookup (it outlives the connection it was asked on)."""
        await asyncio.sleep(seconds)
        return {"topic": topic, "found": f"{topic}の結果"}

    return tools


@dataclass
class ToolDropFigures:
    calls: int = 0
    told: int = 0
    drops_during_calls: int = 0
    cut: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"tools: {self.told}/{self.calls} long-running results told after a drop ({self.cut} of the answers"
                f" telling them cut by a later drop; {self.drops_during_calls} drops while they ran)")


async def tools_through_drops(calls: int, tool_seconds: float = 2.5, drop_every: float = 1.5) -> ToolDropFigures:
    """Long-running calls that outlive their connection; the result must still be told in their turn."""
    assistant = ReplayAwareAssistant({r"(\S+)を調べて": lambda m: [call("slow_lookup", topic=m.group(1))]})
    server = flap_server(assistant, drop_every, record=True)
    await server.start()
    toolbox = Toolbox.from_settings(load_settings(), slow_tool_registry(tool_seconds))
    conversation = Conversation(settings_for(server, "azure-ga"), tools=toolbox)
    conversation.start()
    figures = ToolDropFigures()
    try:
        for n in range(calls):
            await conversation.wait_connected(10)
            before = len(server.connections)
            turn = await conversation.send_text(f"話題{n}を調べて")
            try:
                await asyncio.wait_for(turn.done.wait(), tool_seconds + 15)
            except TimeoutError:
                figures.failures.append(f"話題{n}: the turn never ended")
            figures.calls += 1
            figures.drops_during_calls += len(server.connections) - before
            output = json.dumps({"status": "completed", "result": {"topic": f"話題{n}", "found": f"話題{n}の結果"}},
                                ensure_ascii=False)
            given = any(e["item"].get("output") == output for record in server.connections
                        for e in record.of_type("conversation.item.create"))  # the model got the result
            lines = conversation.turn_text(turn).split("\n")
            if given and f"result:{output}" in lines:
                figures.told += 1
            elif given and any(len(t) > len("result:") and f"result:{output}".startswith(t) for t in lines):
                figures.told += 1
                figures.cut += 1  # a later drop cut the answer telling it: settled with what had arrived
            else:
                figures.failures.append(f"話題{n}: {conversation.turn_text(turn)[:120]!r}")
    finally:
        await conversation.close()
        await server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--drop-every", type=float, default=3.0)
    parser.add_argument("--cuts", type=int, default=5, help="messages per cut position and dialect")
    parser.add_argument("--voice-seconds", type=float, default=300.0)
    parser.add_argument("--voice-drops", type=int, default=20)
    parser.add_argument("--tool-calls", type=int, default=10)
    parser.add_argument("--parts", default="messages,cuts,tools,voice")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "messages" in parts:
        normal, flapping = messages_through_flaps(args.messages, args.drop_every)
        print(normal.line("messages, no drops"))
        print(flapping.line(f"messages, a drop every {args.drop_every:g} s"), flush=True)
        for failure in flapping.unanswered:
            print("  unanswered:", failure)
    if "cuts" in parts:
        from benchmarks.soak_cuts import messages_at_each_cut

        for label, figures in messages_at_each_cut(args.cuts).items():
            print(figures.line(f"cut at {label}"), flush=True)
            for failure in figures.unanswered:
                print("  not answered whole:", failure)
    if "tools" in parts:
        tools = asyncio.run(tools_through_drops(args.tool_calls))
        print(tools.line())
        for failure in tools.failures:
            print("  not told:", failure)
    if "voice" in parts:
        voice = asyncio.run(voice_through_drops(args.voice_seconds, args.voice_drops))
        print(voice.line())
        for failure in voice.unanswered:
            print("  not answered aloud:", failure)


if __name__ == "__main__":
    main()
