"""A WebRTC caller in its own process, for tests that kill it (SIGKILL: no Stop, no goodbye packet, as when
a laptop lid closes or a tab is killed). Prints "ready" once its call is up, then sends silence until killed.

Run: python tests/support/vanishing_peer.py <app url> <session hash>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]  # tests/, the repo

from support.webrtc_client import VoiceClient  # noqa: E402


async def main(url: str, session_hash: str) -> None:
    client = VoiceClient(url, session_hash)
    answer = await client.connect()
    if not answer.get("sdp"):
        print("refused", answer, flush=True)
        return
    while client.pc.connectionState != "connected":
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
