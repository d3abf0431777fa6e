"""Soak: typed messages through `/chat` with the service connection cut at an exact point of each exchange.

The local Realtime server cuts the connection (no close frame) where a drop can fall: before the message
reaches the service, during its send, before or just after `response.created`, or mid-answer; in both
dialects. Every message must get its whole answer after the reconnect, never the reconnect notice or a fragment.
Part of benchmarks/soak_flaps.py (`--parts cuts`); run alone: python benchmarks/soak_cuts.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import settings_for  # noqa: E402
from gradio_client import Client  # noqa: E402
from support.apphost import running_app  # noqa: E402
from support.service import CutPoint  # noqa: E402

from benchmarks.soak_flaps import MessageFigures, answer_to, flap_assistant, flap_server  # noqa: E402
from offline.runtime import serve_in_thread  # noqa: E402

# Where a drop can fall in a typed message's exchange: (event types, sent by the server?, cut after sending?, skip).
CUT_POSITIONS = {
    "message lost": (("conversation.item.create",), False, False, 0),
    "request lost": (("response.create",), False, False, 0),
    "before response.created": (("response.created",), True, False, 0),
    "after response.created": (("response.created",), True, True, 0),
    "mid-response": (("response.output_text.delta", "response.text.delta"), True, True, 2),
}


def messages_at_each_cut(rounds: int, limit: float = 10.0) -> dict[str, MessageFigures]:
    """`rounds` messages through `/chat` with the connection cut at each position, in each dialect."""
    results: dict[str, MessageFigures] = {}
    for flavour in ("azure-ga", "azure-preview"):
        assistant = flap_assistant()
        server = flap_server(assistant, None, record=True)
        serve_in_thread(server)
        with running_app(settings=settings_for(server, flavour)) as app:
            client = Client(app.url, verbose=False)
            for position, (types, sent, after, skip) in CUT_POSITIONS.items():
                figures = results[f"{flavour}, {position}"] = MessageFigures()
                for n in range(rounds):
                    server.cut = CutPoint(types, sent=sent, after=after, skip=skip)
                    question = f"質問{len(server.connections)}{n}"
                    started = time.monotonic()
                    reply = client.submit(question, api_name="/chat").result(timeout=limit * 3)
                    figures.latencies.append(time.monotonic() - started)
                    figures.sent += 1
                    if reply == answer_to(question) and server.cut.reached.is_set():
                        figures.complete += 1
                    else:
                        figures.unanswered.append(f"{question} → {reply[:80]!r}")
                figures.connections = len(server.connections)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="messages per cut position and dialect")
    for label, figures in messages_at_each_cut(parser.parse_args().rounds).items():
        print(figures.line(f"cut at {label}"), flush=True)
        for failure in figures.unanswered:
            print("  not answered whole:", failure)


if __name__ == "__main__":
    main()
