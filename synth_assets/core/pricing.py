"""Dollar cost of LLM tokens from the versioned price table in ``core/data/prices.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PRICE_TABLE = Path(__file__).parent / "data" / "prices.yaml"


class UnknownPriceError(ValueError):
    """The model has no price: booking it as free would hide real spend."""


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float
    batch_discount: float
    table_version: str

    def cost(self, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float:
        dollars = (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1_000_000
        return dollars * (self.batch_discount if batch else 1.0)


@cache
def _table() -> dict:
    return yaml.safe_load(PRICE_TABLE.read_text(encoding="utf-8"))


def price_for(model: str, override: dict[str, float] | None = None) -> Price:
    """The price of ``model``: the task's override if it has one, else the repo's table."""
    table = _table()
    if override is not None:
        return Price(override["input"], override["output"], table["batch_discount"], "task.yaml override")
    if model not in table["models"]:
        raise UnknownPriceError(
            f"model {model!r} is not in the price table {PRICE_TABLE} (known: {', '.join(sorted(table['models']))}); "
            "add it there or set generation.llm.price_per_million_tokens: {input: ..., output: ...} in task.yaml"
        )
    entry = table["models"][model]
    return Price(entry["input"], entry["output"], table["batch_discount"], str(table["version"]))
