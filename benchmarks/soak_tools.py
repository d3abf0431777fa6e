"""Soak: random tool outcomes across several conversations at once, against the local Realtime server.

Each message makes the (scripted) model call one to three tools with a random outcome: success, a
tool error, a timeout, malformed arguments, an unknown tool, a call from a response the user cut
off by speaking (barge-in), or slow long-running calls that overlap. Afterwards:
every call the model made is in the table exactly once, ended (and told to the model exactly once);
no task is left running; no active-response error reached the user; memory is flat across rounds.

Loopback only; stops by itself and prints its figures.
Run: python benchmarks/soak_tools.py [--outcomes 1000] [--conversations 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import API_KEY, ScriptedAssistant, ToneVoice, settings_for  # noqa: E402
from support.service import ConnectionRecord, InstrumentedServer  # noqa: E402

from conversation.conversation import Conversation  # noqa: E402
from conversation.tool_runner import CallStatus  # noqa: E402
from offline.engine import Call  # noqa: E402
from offline.speech import EnergySpeechDetector  # noqa: E402
from settings import load_settings  # noqa: E402
from tools import Toolbox, ToolError, ToolRegistry  # noqa: E402
from web.chat import chatbot_messages  # noqa: E402
from web.labels import notice_label  # noqa: E402

OUTCOMES = ("success", "error", "timeout", "malformed", "unknown", "cancelled", "slow")
EXPECTED = {"success": CallStatus.DONE, "error": CallStatus.FAILED, "timeout": CallStatus.TIMEOUT,
            "malformed": CallStatus.FAILED, "unknown": CallStatus.FAILED, "cancelled": CallStatus.CANCELLED,
            "slow": CallStatus.DONE}
TURN_LIMIT_SECONDS = 20.0
SPEECH = np.concatenate([ToneVoice.tone("あいうえお"), np.zeros(24_000, np.int16)])  # a barge-in, then silence


def fault_registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool()
    async def quick(n: int) -> dict:
        """Answers at once."""
        await asyncio.sleep(random.uniform(0, 0.05))
        return {"n": n}

    @tools.tool()
    async def refuses(reason: str) -> dict:
        """Always fails with a message for the model."""
        raise ToolError(f"できません: {reason}")

    @tools.tool(timeout=0.2)
    async def dawdles() -> dict:
        """Never finishes in time."""
        await asyncio.sleep(30)
        return {}

    @tools.tool(long_running=True)
    async def slow_job(n: int, seconds: float) -> dict:
        """A slow job run in the background."""
        await asyncio.sleep(seconds)
        return {"n": n, "slept": seconds}

    return tools


def call_for(outcome: str, n: int, rng: random.Random) -> Call:
    """What the model calls for one outcome (`n` tells the calls apart)."""
    match outcome:
        case "success":
            return Call("quick", json.dumps({"n": n}))
        case "error":
            return Call("refuses", json.dumps({"reason": f"理由{n}"}, ensure_ascii=False))
        case "timeout":
            return Call("dawdles", "{}")
        case "malformed":
            return Call("quick", rng.choice([f'{{"n": {n}', '{"n": "たくさん"}', "[1, 2]", "", "{}"]))
        case "unknown":
            return Call(f"no_such_tool_{n % 3}", "{}")
        case "cancelled":
            return Call("quick", json.dumps({"n": n}), stream_seconds=1.5)  # cut off while its arguments stream
        case "slow":
            return Call("slow_job", json.dumps({"n": n, "seconds": round(rng.uniform(0.2, 1.5), 2)}))
    raise ValueError(outcome)


def outcome_of(name: str, arguments: str) -> str:
    """Which outcome a call the model made was meant to have (from its name and arguments)."""
    if name.startswith("no_such_tool"):
        return "unknown"
    if name == "refuses":
        return "error"
    if name == "dawdles":
        return "timeout"
    if name == "slow_job":
        return "slow"
    try:
        parsed = json.loads(arguments or "null")
    except json.JSONDecodeError:
        return "malformed"
    return "success" if isinstance(parsed, dict) and isinstance(parsed.get("n"), int) else "malformed"


class PlannedAssistant(ScriptedAssistant):
    """The scripted model; a message `plan <id>` calls the tools planned for it."""

    def __init__(self) -> None:
        super().__init__({r"^plan (\S+)$": lambda m: self.plans.pop(m.group(1), [])})
        self.plans: dict[str, list[Call]] = {}


@dataclass
class ToolFigures:
    outcomes: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    calls: int = 0
    problems: list[str] = field(default_factory=list)
    active_response_errors: int = 0  # sent by the service; the gate must absorb every one
    tasks_before: int = 0
    leftover_tasks: list[str] = field(default_factory=list)  # started by the soak and still running after it
    memory_kib: list[float] = field(default_factory=list)  # traced memory after each round
    turn_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        growth = self.memory_kib[-1] - self.memory_kib[1] if len(self.memory_kib) > 1 else float("nan")
        return (f"tools: {sum(self.outcomes.values())} outcomes {dict(self.outcomes)} in {self.seconds:.0f} s;"
                f" {self.calls} calls, statuses {dict(self.statuses)}; problems {len(self.problems)};"
                f" active-response errors absorbed {self.active_response_errors};"
                f" tasks left running {len(self.leftover_tasks)} (of {self.tasks_before} before);"
                f" traced memory per round {[round(m) for m in self.memory_kib]} KiB (growth after round 1:"
                f" {growth:+.0f} KiB); turn median {statistics.median(self.turn_seconds):.2f} s")


async def drive(conversation: Conversation, assistant: PlannedAssistant, prefix: str, outcomes: int,
                rng: random.Random, figures: ToolFigures) -> None:
    """One user: messages with one to three planned outcomes each; slow ones overlap the next messages."""
    open_turns = []
    n = 0
    while n < outcomes:
        kinds = [rng.choice(OUTCOMES) for _ in range(min(outcomes - n, rng.choice((1, 1, 2, 3))))]
        if "cancelled" in kinds:
            kinds = ["cancelled"]  # the barge-in cuts the whole response
            await wait_turns(open_turns, figures)  # and must hit this response, not a result being told
        key = f"{prefix}-{n}"
        assistant.plans[key] = [call_for(kind, n + i, rng) for i, kind in enumerate(kinds)]
        figures.outcomes.update(kinds)
        n += len(kinds)
        started = time.monotonic()
        turn = await conversation.send_text(f"plan {key}")
        if kinds == ["cancelled"]:
            async with asyncio.timeout(TURN_LIMIT_SECONDS):
                while not turn.responses and not turn.done.is_set():
                    await asyncio.sleep(0.01)
            await conversation.append_audio(SPEECH)
        open_turns.append((turn, started, key))
        if "slow" not in kinds:
            await wait_turns(open_turns, figures)
    await wait_turns(open_turns, figures)


async def wait_turns(open_turns: list, figures: ToolFigures) -> None:
    for turn, started, key in open_turns:
        try:
            await asyncio.wait_for(turn.done.wait(), TURN_LIMIT_SECONDS)
            figures.turn_seconds.append(time.monotonic() - started)
        except TimeoutError:
            figures.problems.append(f"{key}: turn still open after {TURN_LIMIT_SECONDS:g} s")
    open_turns.clear()


def calls_made(record: ConnectionRecord) -> dict[str, tuple[str, str, str]]:
    """call_id → (name, arguments, planned outcome) of every function call the model made on this connection."""
    made = {}
    for event in record.sent_of_type("response.done"):
        response = event["response"]
        for item in response.get("output") or []:
            if item.get("type") == "function_call":
                name, arguments = item["name"], item.get("arguments", "")
                cut = response.get("status") == "cancelled" and item.get("status") != "completed"
                made[item["call_id"]] = (name, arguments, "cancelled" if cut else outcome_of(name, arguments))
    return made


def check(conversation: Conversation, record: ConnectionRecord, figures: ToolFigures, label: str) -> None:
    """Every call in the table once, ended with the planned status, its output given to the model once."""
    made = calls_made(record)
    table = {c.call_id: c for c in conversation.snapshot().calls}
    figures.calls += len(made)
    if set(table) != set(made):
        figures.problems.append(f"{label}: table {sorted(set(table) ^ set(made))} differs from the model's calls")
    outputs = Counter(e["item"]["call_id"] for e in record.of_type("conversation.item.create")
                      if e["item"].get("type") == "function_call_output")
    for call_id, (name, arguments, outcome) in made.items():
        call = table.get(call_id)
        if call is None:
            continue
        figures.statuses[call.status.value] += 1
        expected = EXPECTED[outcome]
        if call.status != expected or call.finished_at is None:
            figures.problems.append(f"{label}: {name}({arguments}) ended {call.status}, expected {expected}")
        told = outputs[call_id] + (outputs[f"{call_id}_r"[:32]] if call.long_running else 0)
        if told != (2 if call.long_running else 1):
            figures.problems.append(f"{label}: {name} {call_id} told {told} times")
    errors = record.sent_of_type("error")
    figures.active_response_errors += sum(e["error"].get("code") == "conversation_already_has_active_response"
                                          for e in errors)
    notice = notice_label(conversation.notice)
    shown = " ".join(m["content"] for m in chatbot_messages(conversation.snapshot().messages)) + " " + notice
    if "active response" in shown or "already has" in shown or "エラー" in notice:
        figures.problems.append(f"{label}: an error reached the user: {notice!r}")


def traced_kib() -> float:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] / 1024


async def soak_tools(outcomes: int = 1000, conversations: int = 4, rounds: int = 4, seed: int = 7) -> ToolFigures:
    """`outcomes` outcomes spread over `rounds` rounds of `conversations` conversations running at once."""
    quiet = logging.getLogger("conversation")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # timeouts and failed tools are expected here by the thousand
    rng = random.Random(seed)
    figures = ToolFigures()
    assistant = PlannedAssistant()
    server = InstrumentedServer(lambda: assistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                                api_key=API_KEY, speed=8.0)

    async def transcribe(_pcm) -> str:
        return "こんにちは"

    server.transcriber = transcribe
    await server.start()
    toolbox = Toolbox.from_settings(load_settings(), fault_registry())
    before = asyncio.all_tasks()
    figures.tasks_before = len(before)
    tracemalloc.start()
    started = time.monotonic()
    per_round = [outcomes // rounds + (r < outcomes % rounds) for r in range(rounds)]
    try:
        for round_number, count in enumerate(per_round):
            live = [Conversation(settings_for(server, "azure-ga"), tools=toolbox) for _ in range(conversations)]
            for conversation in live:
                conversation.start()
                await conversation.wait_connected(5)
            shares = [count // conversations + (i < count % conversations) for i in range(conversations)]
            await asyncio.gather(*(drive(c, assistant, f"r{round_number}c{i}", share, random.Random(rng.random()),
                                         figures) for i, (c, share) in enumerate(zip(live, shares, strict=True))))
            records = list(server.connections)
            for i, (conversation, record) in enumerate(zip(live, records, strict=True)):
                check(conversation, record, figures, f"round {round_number} conversation {i}")
            for conversation in live:
                await conversation.close()
            server.connections.clear()
            assistant.contexts.clear()
            assistant.answered.clear()
            del live, records
            await asyncio.sleep(0.2)  # the server side of the closed connections ends
            figures.memory_kib.append(traced_kib())
        figures.seconds = time.monotonic() - started
    finally:
        tracemalloc.stop()
        quiet.setLevel(level)
        await server.stop()
    for _ in range(100):  # closed sockets finish their own shutdown shortly
        if not (left := asyncio.all_tasks() - before):
            break
        await asyncio.sleep(0.05)
    figures.leftover_tasks = sorted(t.get_name() for t in left)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    figures = asyncio.run(soak_tools(args.outcomes, args.conversations, args.rounds))
    print(figures.line())
    for problem in figures.problems:
        print("  problem:", problem)


if __name__ == "__main__":
    main()
