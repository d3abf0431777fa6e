"""What a conversation costs and how fast it answers: tokens per response, an estimated price, turn latencies.

The service reports usage in every `response.done`; each response re-bills the whole conversation as
input, so the meter keeps every response and sums them. Prices are estimates from a dated table
(data/prices.json), replaceable with REALTIME_PRICES_FILE; REALTIME_PRICE_MODEL names the price row
when the model name is an arbitrary Azure deployment. Pure bookkeeping: no UI, no wire names.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from conversation.prices import Prices, PriceTable, load_prices
from settings import RealtimeSettings

MAX_OPEN_TURNS = 64  # turns that never got an answer must not pile up


class TurnKind(StrEnum):
    VOICE = "voice"  # end of the user's speech → first audio
    TYPED = "typed"  # message sent → first text


class CostStatus(StrEnum):
    ESTIMATED = "estimated"
    UNKNOWN_MODEL = "unknown_model"  # tokens are counted, the price is not known
    NOT_BILLED = "not_billed"  # offline mode: nothing is paid


def _count(value: Any) -> int:
    """A token count as reported, or 0 when missing or malformed (usage fields are optional)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _details(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @classmethod
    def from_reported(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """`response.usage` as the service sends it; absent details are inferred, never guessed upward."""
        inputs, outputs = _details(usage.get("input_token_details")), _details(usage.get("output_token_details"))
        input_tokens, output_tokens = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
        text_in, audio_in = _count(inputs.get("text_tokens")), _count(inputs.get("audio_tokens"))
        if not text_in and not audio_in:
            text_in = input_tokens  # no breakdown: price it as text, the cheaper reading
        cached = min(_count(inputs.get("cached_tokens")), text_in + audio_in)
        cached_details = _details(inputs.get("cached_tokens_details"))
        if cached_details:
            cached_text = min(_count(cached_details.get("text_tokens")), text_in)
            cached_audio = min(_count(cached_details.get("audio_tokens")), audio_in)
        else:  # split the cache like the input it came from
            cached_text = min(text_in, round(cached * text_in / (text_in + audio_in))) if cached else 0
            cached_audio = min(audio_in, cached - cached_text)
        text_out, audio_out = _count(outputs.get("text_tokens")), _count(outputs.get("audio_tokens"))
        if not text_out and not audio_out:
            text_out = output_tokens
        total = _count(usage.get("total_tokens")) or input_tokens + output_tokens
        return cls(input_tokens, output_tokens, total, cached, text_in, audio_in, cached_text, cached_audio,
                   text_out, audio_out)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _TOKEN_FIELDS}  # dataclasses.asdict is 20x slower

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(*(getattr(self, name) + getattr(other, name) for name in _TOKEN_FIELDS))

    def cost(self, prices: Prices) -> float:
        """Estimated USD: uncached and cached input per modality, plus output per modality."""
        per_token = (
            (self.input_text_tokens - self.cached_text_tokens) * prices.text_in
            + self.cached_text_tokens * prices.cached_text_in
            + (self.input_audio_tokens - self.cached_audio_tokens) * prices.audio_in
            + self.cached_audio_tokens * prices.cached_audio_in
            + self.output_text_tokens * prices.text_out
            + self.output_audio_tokens * prices.audio_out
        )
        return per_token / 1_000_000


_TOKEN_FIELDS = tuple(f.name for f in fields(TokenUsage))


@dataclass(frozen=True)
class ResponseUsage:
    response_id: str
    at: float  # wall clock, for the export
    tokens: TokenUsage
    cost_usd: float | None


@dataclass(frozen=True)
class TurnLatency:
    turn_id: str
    kind: TurnKind
    seconds: float


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


class UsageMeter:
    """Per-response and per-conversation usage, cost estimate and latencies of one conversation."""

    def __init__(self, model: str, prices: PriceTable | None = None, billed: bool = True,
                 price_model: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.prices = prices if prices is not None else PriceTable({})
        self.billed = billed
        self._row = self.prices.lookup(price_model or model) if billed else None
        self._clock = clock
        self.responses: list[ResponseUsage] = []
        self.totals = TokenUsage()  # kept as responses arrive: the page reads it on every update
        self._cost = 0.0
        self._seen: set[str] = set()
        self.turns: list[TurnLatency] = []
        self._open: dict[str, tuple[TurnKind, float]] = {}

    @property
    def cost_status(self) -> CostStatus:
        if not self.billed:
            return CostStatus.NOT_BILLED
        return CostStatus.ESTIMATED if self._row else CostStatus.UNKNOWN_MODEL

    # ---- tokens ----------------------------------------------------------------------------

    def on_response_done(self, response_id: str, usage: Any) -> ResponseUsage | None:
        """Record one response's reported usage once; a response without usage counts nothing."""
        if not isinstance(usage, Mapping) or (response_id and response_id in self._seen):
            return None
        tokens = TokenUsage.from_reported(usage)
        cost = tokens.cost(self._row[1]) if self._row else None
        record = ResponseUsage(response_id, time.time(), tokens, cost)
        self._seen.add(response_id)
        self.responses.append(record)
        self.totals = self.totals + tokens
        self._cost += cost or 0.0
        return record

    @property
    def cost_usd(self) -> float | None:
        return self._cost if self._row else None

    # ---- latency ---------------------------------------------------------------------------

    def turn_started(self, turn_id: str, kind: TurnKind, at: float | None = None) -> None:
        """A turn waits for its first output; a new voice turn replaces one that never got an answer."""
        if kind == TurnKind.VOICE:
            for stale in [t for t, (k, _) in self._open.items() if k == TurnKind.VOICE]:
                del self._open[stale]
        self._open[turn_id] = (kind, self._clock() if at is None else at)
        while len(self._open) > MAX_OPEN_TURNS:
            del self._open[next(iter(self._open))]

    def first_output(self, turn_id: str, at: float | None = None) -> TurnLatency | None:
        """The turn's first audio (voice) or text (typed) arrived; later outputs of the turn are ignored."""
        opened = self._open.pop(turn_id, None)
        if opened is None:
            return None
        kind, started = opened
        latency = TurnLatency(turn_id, kind, max(0.0, (self._clock() if at is None else at) - started))
        self.turns.append(latency)
        return latency

    def first_output_of(self, kind: TurnKind, at: float | None = None) -> list[TurnLatency]:
        """Close every open turn of this kind (audio is not tied to a turn id: it answers the speech before it)."""
        waiting = [t for t, (k, _) in self._open.items() if k == kind]
        if not waiting:  # every audio delta asks: most find nothing open
            return []
        now = self._clock() if at is None else at
        return [latency for t in waiting if (latency := self.first_output(t, now))]

    # ---- report ----------------------------------------------------------------------------

    def latency(self, tool_durations: Iterable[tuple[str, float]] = (), detail: bool = True) -> dict[str, Any]:
        """Medians per turn kind and per tool; tool durations come from the tool runner, which keeps every call."""
        by_kind = {kind: [t.seconds for t in self.turns if t.kind == kind] for kind in TurnKind}
        tools: dict[str, list[float]] = {}
        for name, seconds in tool_durations:
            tools.setdefault(name, []).append(max(0.0, seconds))
        every_tool = [s for durations in tools.values() for s in durations]
        latency = {
            "voice_median_seconds": _median(by_kind[TurnKind.VOICE]),
            "voice_turns": len(by_kind[TurnKind.VOICE]),
            "typed_median_seconds": _median(by_kind[TurnKind.TYPED]),
            "typed_turns": len(by_kind[TurnKind.TYPED]),
            "tool_median_seconds": _median(every_tool),
            "tool_calls": len(every_tool),
            "tools": {name: {"median_seconds": _median(v), "calls": len(v)} for name, v in tools.items()},
        }
        if detail:
            latency["turns"] = [{"turn_id": t.turn_id, "kind": str(t.kind), "seconds": round(t.seconds, 3)}
                                for t in self.turns]
        return latency

    def summary(self, tool_durations: Iterable[tuple[str, float]] = (), detail: bool = True) -> dict[str, Any]:
        """Totals and latency medians as plain JSON-ready values; `detail` adds one row per response and turn."""
        cost = self.cost_usd
        as_of, source = self.prices.as_of_and_source(self._row[0]) if self._row else (None, None)
        summary: dict[str, Any] = {
            "model": self.model,
            "price_model": self._row[0] if self._row else None,
            "cost_status": str(self.cost_status),
            "prices_as_of": as_of,
            "prices_source": source,
            "prices_problem": self.prices.problem or None,
            "totals": {"responses": len(self.responses), **self.totals.as_dict(),
                       "cost_usd": None if cost is None else round(cost, 6)},
            "latency": self.latency(tool_durations, detail),
        }
        if detail:
            summary["responses"] = [
                {"response_id": r.response_id, "at": round(r.at, 3), **r.tokens.as_dict(),
                 "cost_usd": None if r.cost_usd is None else round(r.cost_usd, 6)}
                for r in self.responses
            ]
        return summary


def meter_for(settings: RealtimeSettings) -> UsageMeter:
    """The meter a conversation with this service needs: offline is never billed."""
    if settings.provider == "offline":
        return UsageMeter(settings.model, billed=False)
    return UsageMeter(settings.model, load_prices(settings.prices_file), price_model=settings.price_model)
