"""Token usage as the service reports it on `response.done`: deterministic and plausible, not exact.

Every response re-bills the whole conversation as input; what the previous response already
billed (the same prefix of instructions, tools and items) counts as cached. Text is counted as
about one token per character; audio as 1 token per 100 ms heard by the model (input) and
1 per 50 ms generated (output). GA `session.truncation` drops the oldest items once the
conversation exceeds the context limit, so long conversations stay bounded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from offline.wire import Event

INPUT_AUDIO_MS_PER_TOKEN = 100
OUTPUT_AUDIO_MS_PER_TOKEN = 50


@dataclass(frozen=True)
class Tokens:
    text: int = 0
    audio: int = 0

    @property
    def total(self) -> int:
        return self.text + self.audio

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.text + other.text, self.audio + other.audio)


def item_tokens(item: Event, audio_ms: int) -> Tokens:
    """What one conversation item costs as input (`audio_ms`: the audio the model has of it)."""
    kind = item.get("type")
    if kind == "function_call":
        return Tokens(text=len(item.get("name") or "") + len(item.get("arguments") or ""))
    if kind == "function_call_output":
        return Tokens(text=len(item.get("output") or ""))
    text = 0
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text", "output_text"):
            text += len(part.get("text") or "")
    return Tokens(text=text + 4, audio=-(-audio_ms // INPUT_AUDIO_MS_PER_TOKEN))  # +4: role and framing


def output_tokens(text: str, audio_ms: int) -> Tokens:
    return Tokens(text=len(text), audio=-(-audio_ms // OUTPUT_AUDIO_MS_PER_TOKEN))


@dataclass
class TokenBiller:
    """The service's bill for the input of each response on one connection (cached prefix, truncation).

    `context_token_limit` is the model's input window.
    """

    context_token_limit: int = 32_000
    dropped: set[str] = field(default_factory=set)  # item ids truncated out of the model's context
    _previous: list[tuple[str, int]] = field(default_factory=list)  # what the last response billed, in order

    def bill_input(self, header: str, items: list[Event], audio_ms: dict[str, int], truncation: object) -> dict:
        """The input of a response starting now; remembers it for the next one's cached count."""
        head = Tokens(text=len(header))
        kept = [i for i in items if i["id"] not in self.dropped]
        costs = [item_tokens(i, audio_ms.get(i["id"], 0)) for i in kept]
        for index in self._truncate(head, costs, truncation):
            self.dropped.add(kept[index]["id"])
        units = [("header:" + header, head.total)]
        total = head
        for item, cost in zip(kept, costs, strict=True):
            if item["id"] not in self.dropped:
                units.append((item["id"], cost.total))
                total += cost
        cached = 0
        for now, before in zip(units, self._previous, strict=False):
            if now != before:
                break
            cached += now[1]
        self._previous = units
        return {"total": total, "cached": cached}

    def _truncate(self, head: Tokens, costs: list[Tokens], truncation: object) -> range:
        """Indexes of the oldest items to drop, per GA `truncation` ("auto" when absent)."""
        if truncation == "disabled":
            return range(0)
        limit = self.context_token_limit - head.total
        ratio = 1.0
        if isinstance(truncation, dict) and truncation.get("type") == "retention_ratio":
            ratio = float(truncation.get("retention_ratio", 1.0))
            limit = int((truncation.get("token_limits") or {}).get("post_instructions") or limit)
        conversation = sum(c.total for c in costs)
        if conversation <= limit:
            return range(0)
        # retention_ratio drops more at once, so the cached prefix survives several responses.
        target = min(limit, int(conversation * ratio))
        drop = 0
        while drop < len(costs) and conversation > target:
            conversation -= costs[drop].total
            drop += 1
        return range(drop)


def usage_of(billed_input: dict, produced: Tokens) -> Event:
    """The `usage` object of `response.done`."""
    total_in: Tokens = billed_input["total"]
    return {
        "total_tokens": total_in.total + produced.total,
        "input_tokens": total_in.total,
        "output_tokens": produced.total,
        "input_token_details": {"cached_tokens": billed_input["cached"], "text_tokens": total_in.text,
                                "audio_tokens": total_in.audio},
        "output_token_details": {"text_tokens": produced.text, "audio_tokens": produced.audio},
    }


def header_of(instructions: str, tools: list[Event]) -> str:
    """The part of every input before the conversation: instructions and tool definitions."""
    return instructions + json.dumps(tools, ensure_ascii=False, sort_keys=True)
