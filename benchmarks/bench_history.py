"""What the 50th response of a long conversation re-bills as input, with and without bounds.

Against the local Realtime server (GA dialect, text-only responses, its usage as the service
reports it): no bound; GA truncation (REALTIME_HISTORY_TOKENS); and a fresh service session before
the 50th message (after a drop or a rotation) replaying everything or only the latest items
(REALTIME_REPLAY_MAX_ITEMS).

Run: python benchmarks/bench_history.py [--messages 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import API_KEY, ScriptedAssistant, ToneVoice, settings_for  # noqa: E402
from support.service import InstrumentedServer  # noqa: E402

from conversation.conversation import Conversation  # noqa: E402
from offline.speech import EnergySpeechDetector  # noqa: E402

QUESTION = "会話が長くなると料金はどう変わりますか。具体的に教えてください。" * 2


async def last_input_tokens(messages: int, fresh_session_before_last: bool = False, **bounds: int) -> dict:
    server = InstrumentedServer(ScriptedAssistant, ToneVoice, lambda: EnergySpeechDetector(threshold=500.0),
                                api_key=API_KEY, speed=50.0)
    await server.start()
    conversation = Conversation(replace(settings_for(server, "azure-ga"), **bounds))
    conversation.start()
    try:
        assert await conversation.wait_connected(5)
        for n in range(messages):
            if fresh_session_before_last and n == messages - 1:
                await server.drop_all()
                await asyncio.sleep(0.1)
                assert await conversation.wait_connected(10)
            turn = await conversation.send_text(f"{n}: {QUESTION}")
            await asyncio.wait_for(turn.done.wait(), 10)
        done = [e for r in server.connections for e in r.sent_of_type("response.done")]
        return done[-1]["response"]["usage"]
    finally:
        await conversation.close()
        await server.stop()


async def main(messages: int) -> None:
    cases = {
        "上限なし": {},
        "REALTIME_HISTORY_TOKENS=4000（GA の truncation）": {"history_tokens": 4000},
        "新しいセッションへ移った直後、全履歴を再送": {"fresh_session_before_last": True, "replay_items": 10_000},
        "新しいセッションへ移った直後、REALTIME_REPLAY_MAX_ITEMS=20": {"fresh_session_before_last": True,
                                                                  "replay_items": 20},
    }
    print(f"{messages} 件目の応答の入力トークン（うちキャッシュ）")
    for label, options in cases.items():
        usage = await last_input_tokens(messages, **options)
        cached = usage["input_token_details"]["cached_tokens"]
        print(f"  {label}: {usage['input_tokens']} ({cached})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50)
    asyncio.run(main(parser.parse_args().messages))
