"""Prices for the cost estimate: a dated table per model (data/prices.json), overridable by a file.

REALTIME_PRICES_FILE names a JSON file of the same shape whose models are laid over the defaults;
a file that cannot be read leaves the defaults and says why.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PRICES_PATH = Path(__file__).resolve().parent.parent / "data" / "prices.json"
# A dated snapshot of a model ("gpt-realtime-2025-08-28"); "gpt-realtime-2.1" is another model, not a snapshot.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens."""

    text_in: float
    cached_text_in: float
    audio_in: float
    cached_audio_in: float
    text_out: float
    audio_out: float


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, Prices]
    as_of: str = ""
    source: str = ""
    problem: str = ""  # why an override file was not used (Japanese, shown to the operator)
    dated: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # a model's own (as_of, source)

    def as_of_and_source(self, key: str) -> tuple[str, str]:
        """When and where a model's prices were read: its own date and source, else the table's."""
        own_as_of, own_source = self.dated.get(key, ("", ""))
        return own_as_of or self.as_of, own_source or self.source

    def lookup(self, model: str) -> tuple[str, Prices] | None:
        """The row for `model`: exact, else the model it is a dated snapshot of ("-2025-08-28")."""
        name = model.strip().lower()
        if name in self.models:
            return name, self.models[name]
        extended = [key for key in self.models if name.startswith(key + "-") and _SNAPSHOT.fullmatch(name[len(key):])]
        if not extended:
            return None
        key = max(extended, key=len)
        return key, self.models[key]


def _prices(raw: Any) -> Prices:
    if not isinstance(raw, Mapping):
        raise ValueError("each model needs an object of prices")
    values = {}
    for f in fields(Prices):
        value = raw.get(f.name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{f.name} must be a non-negative number")
        values[f.name] = float(value)
    return Prices(**values)


def parse_price_table(data: Any) -> PriceTable:
    """A table from the JSON shape of data/prices.json; ValueError says what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise ValueError('expected {"models": {"<model>": {...}}}')
    models, dated = {}, {}
    for name, raw in data["models"].items():
        key = str(name).strip().lower()
        try:
            models[key] = _prices(raw)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        dated[key] = (str(raw.get("as_of", "")), str(raw.get("source", "")))
    return PriceTable(models, str(data.get("as_of", "")), str(data.get("source", "")), dated=dated)


def read_price_table(path: Path | str) -> PriceTable:
    with open(path, encoding="utf-8") as file:
        return parse_price_table(json.load(file))


@functools.lru_cache(maxsize=8)  # every conversation asks; read (and warn about) a file once
def load_prices(path: str = "") -> PriceTable:
    """The defaults, with the models of the file at `path` (REALTIME_PRICES_FILE) laid over them;
    a bad file leaves the defaults."""
    defaults = read_price_table(DEFAULT_PRICES_PATH)
    if not path:
        return defaults
    try:
        override = read_price_table(path)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        log.warning("REALTIME_PRICES_FILE %s not used: %s", path, exc)
        problem = f"料金ファイル {path} を読めなかったため既定の料金表を使っています（{exc}）。"
        return PriceTable(defaults.models, defaults.as_of, defaults.source, problem, defaults.dated)
    return PriceTable({**defaults.models, **override.models}, override.as_of or defaults.as_of,
                      override.source or defaults.source, dated={**defaults.dated, **override.dated})
