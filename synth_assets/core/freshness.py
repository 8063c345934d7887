"""Is a task still being fed? A task with no newly accepted batch within its window is stale.

"Accepted" means the batch passed its gate: a batch that ran and failed does not keep a task
fresh, and neither does a task whose last good batch is old however often it is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Freshness:
    task: str
    window_hours: float
    last_batch: str | None  # newest batch whose gate passed
    last_accepted_at: datetime | None
    now: datetime

    @property
    def hours_since(self) -> float | None:
        if self.last_accepted_at is None:
            return None
        return round((self.now - self.last_accepted_at).total_seconds() / 3600, 1)

    @property
    def stale(self) -> bool:
        return self.hours_since is None or self.hours_since > self.window_hours

    def sentence(self) -> str:
        if self.last_batch is None:
            return f"{self.task}: no accepted batch yet (window {self.window_hours:g} h)"
        state = "stale" if self.stale else "fresh"
        return (
            f"{self.task}: {state}, last accepted batch {self.last_batch} {self.hours_since:g} h ago "
            f"(window {self.window_hours:g} h)"
        )


def freshness_from(task: str, accepted: list[tuple[str, datetime]], window_hours: float, now: datetime) -> Freshness:
    """Freshness of ``task`` from its accepted batches as (key, when the gate passed)."""
    if not accepted:
        return Freshness(task, window_hours, None, None, now)
    batch, when = max(accepted, key=lambda item: item[1])
    return Freshness(task, window_hours, batch, when, now)
