"""The voice-call limit of the whole cluster: one Redis sorted set of slots, each scored by its expiry.

A replica renews its own slots every HEARTBEAT_SECONDS; a replica that crashed stops renewing, so its slots
expire after SLOT_SECONDS and the next claim anywhere sweeps them. Times are Redis's own clock (TIME in the
scripts), so the replicas' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shared_state.store import SharedStore

log = logging.getLogger(__name__)

SLOT_SECONDS = 6.0
HEARTBEAT_SECONDS = 2.0

# KEYS[1] the set; ARGV: member, limit, seconds. 1 = claimed (or already held), 0 = the cluster is full.
_CLAIM = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[1])
return 1
"""
# KEYS[1] the set; ARGV: seconds, members... (re-added if Redis lost them, e.g. after its restart)
_RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], t + tonumber(ARGV[1]), ARGV[i]) end
return #ARGV - 1
"""


class VoiceSlots:
    def __init__(self, store: SharedStore, seconds: float = SLOT_SECONDS,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._store = store
        self._key = store.key("voice_slots")
        self._seconds = seconds
        self._heartbeat_seconds = heartbeat
        self._held: set[str] = set()
        self._heartbeat: asyncio.Task | None = None

    def _member(self, call_id: str) -> str:
        return f"{self._store.replica}:{call_id}"

    async def claim(self, call_id: str, limit: int) -> bool:
        """A slot for this call if the cluster has fewer than `limit` calls; without Redis, only the local
        limit (checked by the caller) holds, and the slot joins the set when Redis is back."""
        member = self._member(call_id)
        ok, claimed = await self._store.run(lambda r: r.eval(_CLAIM, 1, self._key, member, limit, self._seconds))
        if ok and not claimed:
            return False
        self._held.add(member)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew(), name="voice slot heartbeat")
        return True

    async def release(self, call_id: str) -> None:
        member = self._member(call_id)
        if member in self._held:
            self._held.discard(member)
            await self._store.run(lambda r: r.zrem(self._key, member))

    @property
    def held(self) -> int:
        return len(self._held)

    async def _renew(self) -> None:
        while self._held:
            await asyncio.sleep(self._heartbeat_seconds)
            if self._held:
                await self._store.run(self._renew_now)

    async def _renew_now(self, r) -> int:
        return await r.eval(_RENEW, 1, self._key, self._seconds, *sorted(self._held))

    async def close(self) -> None:
        """This process stops: its slots go back to the cluster now, not after they expire."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        members, self._held = sorted(self._held), set()
        if members:
            await self._store.run(lambda r: r.zrem(self._key, *members))
