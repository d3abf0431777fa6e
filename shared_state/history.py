"""A conversation's history and usage in Redis, written as they change, read back by another replica.

Keys (all expire REDIS_TTL_SECONDS after the last change):
- `va:conv:<owner>:items`  hash item id → the item as JSON (text, role, function call and its output)
- `va:conv:<owner>:order`  the item ids in the service's order (JSON list)
- `va:conv:<owner>:usage`  list of the usage each response reported (tokens only; costs are recomputed)
- `va:conv:<owner>:writer` which conversation object writes it now: the one that took it over last. A replica
  whose copy was taken over elsewhere stops writing, and does not delete it when its copy goes idle.
`<owner>` is the Gradio session hash of the page or `gradio_client` the conversation belongs to.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from typing import Any

from conversation.conversation import Conversation
from conversation.transcript import Item
from conversation.usage import ResponseUsage, TokenUsage
from shared_state.store import SharedStore

log = logging.getLogger(__name__)
TAKEN_OVER = object()  # what a write returns when another replica owns the record

RETRY_SECONDS = 2.0  # while Redis is behind (down, or a write failed), try to catch up this often
_ITEM_FIELDS = {f.name for f in dataclasses.fields(Item)}


def _signature(item: Item) -> tuple:
    """What decides whether an item must be written again (strings compare by identity first: cheap)."""
    return item.text, item.pending, item.interrupted, item.sent, item.output, item.arguments, item.role, item.unheard


def _reported(tokens: dict[str, int]) -> dict[str, Any]:
    """TokenUsage fields back in the service's `usage` shape, so the meter recomputes the same totals and cost."""
    return {
        "input_tokens": tokens.get("input_tokens", 0), "output_tokens": tokens.get("output_tokens", 0),
        "total_tokens": tokens.get("total_tokens", 0),
        "input_token_details": {
            "text_tokens": tokens.get("input_text_tokens", 0), "audio_tokens": tokens.get("input_audio_tokens", 0),
            "cached_tokens": tokens.get("cached_tokens", 0),
            "cached_tokens_details": {"text_tokens": tokens.get("cached_text_tokens", 0),
                                      "audio_tokens": tokens.get("cached_audio_tokens", 0)},
        },
        "output_token_details": {"text_tokens": tokens.get("output_text_tokens", 0),
                                 "audio_tokens": tokens.get("output_audio_tokens", 0)},
    }


class ConversationRecord:
    """The Redis copy of one conversation; `pending` while something is not yet written."""

    def __init__(self, store: SharedStore, owner: str, ttl: float) -> None:
        self._store = store
        self.owner = owner
        self._ttl = int(ttl)
        self._stopped = False
        self.keys = [store.key("conv", owner, part) for part in ("items", "order", "usage", "writer")]
        self.token = uuid.uuid4().hex
        self._written: dict[str, tuple] = {}
        self._order: list[str] = []
        self._responses = 0  # how many of the meter's responses are written
        self.pending = False
        self._whole = False  # the next write replaces the whole record (Redis may have lost it while away)
        self._rewrites = 0

    def rewrite(self) -> None:
        """Redis is back, perhaps empty after a restart: write everything again at the next change."""
        self._written, self._order, self._responses = {}, [], 0
        self._whole = self.pending = True
        self._rewrites += 1

    async def restore(self, conversation: Conversation) -> int:
        """Put what Redis holds into a conversation that has not started yet; returns the items restored."""
        items_key, order_key, usage_key, writer_key = self.keys

        async def read(r):
            async with r.pipeline(transaction=True) as pipe:  # and from now on, this conversation writes it
                return await (pipe.get(order_key).hgetall(items_key).lrange(usage_key, 0, -1)
                              .set(writer_key, self.token, ex=self._ttl).execute())

        ok, found = await self._store.run(read)
        if not ok or not found or not found[0]:
            return 0
        order, items, usage = json.loads(found[0]), found[1], found[2]
        restored = 0
        for item_id in order:
            raw = json.loads(items.get(item_id) or "null")
            if not isinstance(raw, dict):
                continue
            item = Item(**{k: v for k, v in raw.items() if k in _ITEM_FIELDS})
            # An unsent message or an untranscribed voice turn never reached the model: it is not history.
            if item.sent and not item.pending:
                conversation.transcript.add(item)
                self._written[item.item_id] = _signature(item)
                restored += 1
        self._order = [i.item_id for i in conversation.transcript.items]
        meter = conversation.usage
        for row in map(json.loads, usage):
            if meter.on_response_done(row["response_id"], _reported(row["tokens"])):
                meter.responses[-1] = dataclasses.replace(meter.responses[-1], at=row["at"])
        self._responses = len(meter.responses)
        return restored

    def stop(self) -> None:
        self._stopped = True

    async def ours(self) -> bool:
        """Whether this conversation still writes the record (False too when Redis cannot say)."""
        ok, writer = await self._store.run(lambda r: r.get(self.keys[3]))
        return ok and writer in (None, self.token)

    async def write(self, conversation: Conversation) -> None:
        """Write what changed since the last successful write (all of it, in one transaction that holds only
        while the record is still this copy's: a replica that took the conversation over wins)."""
        if self._stopped:
            self.pending = False
            return
        items = conversation.transcript.items
        changed = {i.item_id: i for i in items if self._written.get(i.item_id) != _signature(i)}
        order = [i.item_id for i in items]
        present = set(order)
        removed = [item_id for item_id in self._written if item_id not in present]
        responses: list[ResponseUsage] = conversation.usage.responses[self._responses:]
        if not changed and not removed and not responses and order == self._order and not self._whole:
            self.pending = False
            return
        items_key, order_key, usage_key, writer_key = self.keys
        whole, rewrites = self._whole, self._rewrites

        from redis.exceptions import WatchError  # the redis package is loaded only when REDIS_URL is set

        async def write(r):
            async with r.pipeline(transaction=True) as pipe:
                await pipe.watch(writer_key)  # the check and the writes are one: no takeover can fall between
                if await pipe.get(writer_key) not in (None, self.token):
                    return TAKEN_OVER
                pipe.multi()
                if whole:
                    pipe.delete(items_key, usage_key)
                if changed:
                    pipe.hset(items_key, mapping={k: json.dumps(dataclasses.asdict(i), ensure_ascii=False)
                                                  for k, i in changed.items()})
                if removed:
                    pipe.hdel(items_key, *removed)
                pipe.set(order_key, json.dumps(order))
                if responses:
                    pipe.rpush(usage_key, *(json.dumps({"response_id": u.response_id, "at": u.at,
                                                        "tokens": TokenUsage.as_dict(u.tokens)}) for u in responses))
                pipe.set(writer_key, self.token)
                for key in self.keys:
                    pipe.expire(key, self._ttl)
                try:
                    return await pipe.execute()
                except WatchError:  # another replica wrote the record meanwhile: it is theirs now
                    return TAKEN_OVER

        signatures = {k: _signature(i) for k, i in changed.items()}  # as written, not as they are after the await
        ok, result = await self._store.run(write)
        if ok and result is TAKEN_OVER:
            log.info("this conversation was taken over by another replica: no longer written here")
            self.stop()
            self.pending = False
            return
        if rewrites != self._rewrites:  # Redis came back during this write: everything goes again
            return
        self.pending = not ok
        if ok:
            self._whole = False
            self._written.update(signatures)
            for item_id in removed:
                self._written.pop(item_id, None)
            self._order = order
            self._responses += len(responses)

    async def follow(self, conversation: Conversation) -> None:
        """Write as the conversation changes, until it closes (and retry while Redis is behind)."""
        async for _ in conversation.feed.changes(lambda: RETRY_SECONDS if self.pending else None):
            await self.write(conversation)
