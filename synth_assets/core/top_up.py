"""Top-up rounds: more attempts, inside the batch, for the labels its gate left without an accepted row.

A label whose every attempt was rejected (each one a repeat of an earlier batch's text, say, or
written for another label) would otherwise cost the batch its coverage, and with it the whole
batch its publication. So before the batch verdict, ``gated`` asks the batch's own generator for
``gate.top_up_attempts_per_label`` more attempts of just those labels, deduplicates them against
everything the first pass was compared with (the held-out split, the seeds, earlier batches) and
the batch's own unique rows, and gates them. Rounds repeat while labels are still missing and
the last round brought a text not seen before, ``gate.top_up_rounds`` at most.

A top-up attempt is a row like any other, marked with its ``top_up_round`` (0 is the first
pass): it ends accepted or rejected with its reason, so ``attempts = accepted + rejected`` holds
over all rounds. Its request key carries the round (core/generation.py), so its answer is cached
apart from the first pass's and a rerun of the batch sends nothing.

The new attempts go through every tier of the gate but one: the "too easy" filter is a decision
about the batch (apply it or not, on all its accepted rows at once), made on the first pass and
kept. Made again with a few dozen more rows it can flip either way and change hundreds of other
rows' verdicts (265 first-pass rows on the LLM demo) for rows added to fill one label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import pandas as pd

from synth_assets.core.dedup import Reference, dedup_batch, semantic_duplicates
from synth_assets.core.gate import missing_labels
from synth_assets.core.generation import BudgetError
from synth_assets.core.task_config import DedupConfig, GateConfig

# The columns core/gate.py adds to a row; a top-up attempt without them is what ``deduplicated`` would hold.
VERDICT_COLUMNS = ["accepted", "reject_reason", "reject_detail"]


@dataclass(frozen=True)
class TopUpRound:
    number: int
    labels: list[str]  # the labels it asked for: those without an accepted row before it
    attempts: int
    new_texts: int  # attempts whose text the dedup found unique
    accepted: int
    filled: list[str]  # labels that have an accepted row after it, and had none before


@dataclass(frozen=True)
class TopUpOutcome:
    table: pd.DataFrame  # every attempt of the batch, first pass and top-up rounds, with its verdict
    missing_before: list[str]  # labels without an accepted row after the first pass
    rounds: list[TopUpRound]
    stopped: str  # why no further round ran

    @property
    def missing_after(self) -> list[str]:
        return missing_labels(self.table)

    def top_up_attempts(self) -> pd.DataFrame:
        """The top-up rounds' attempts as ``generated`` and ``deduplicated`` would hold them, with their round."""
        return self.table.loc[self.table["top_up_round"] > 0].drop(columns=VERDICT_COLUMNS).reset_index(drop=True)

    def summary(self) -> dict:
        """What the verdict, the materialization and the audit trail say about the top-up."""
        return {
            "rounds_run": len(self.rounds),
            "attempts_by_round": {str(done.number): done.attempts for done in self.rounds},
            "rounds": [asdict(done) for done in self.rounds],
            "labels_missing_before": self.missing_before,
            "labels_topped_up": sorted({label for done in self.rounds for label in done.labels}),
            "labels_still_missing": self.missing_after,
            "stopped": self.stopped,
        }


def gate_with_top_up(
    first_pass: pd.DataFrame,
    config: GateConfig,
    gate: Callable[[pd.DataFrame, GateConfig], pd.DataFrame],
    generate: Callable[[dict[str, int], int, pd.DataFrame], pd.DataFrame],
    dedup: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame],
) -> TopUpOutcome:
    """Gate the batch's ``first_pass`` (its ``deduplicated`` rows), then top up the labels left without an accepted row.

    ``gate(rows, config)`` gives ``rows`` their verdicts under ``config`` (core/gate.py's ``gate_rows``):
    the task's for the first pass, without the "too easy" tier for a round's attempts.
    ``generate(attempts_by_label, round, rows)`` makes a round's attempts in the ``generated`` schema,
    knowing the batch's ``rows`` so far; it raises :class:`BudgetError` when the round would pass a
    budget cap, which ends the top-up, not the batch. ``dedup(attempts, rows)`` gives them their
    duplicate verdicts (see :func:`dedup_top_up`). The table keeps the first pass's ``attrs``.
    """
    rows = first_pass.assign(top_up_round=0)
    table = gate(rows, config)
    first_pass_attrs = dict(table.attrs)
    top_up_config = config.model_copy(update={"too_easy": False})
    missing_before = missing_labels(table)
    rounds: list[TopUpRound] = []
    stopped = ""
    while not stopped:
        number = len(rounds) + 1
        missing = missing_labels(table)
        if not missing:
            stopped = "every attempted label has an accepted row"
        elif rounds and rounds[-1].new_texts == 0:
            stopped = f"round {rounds[-1].number} brought no new text"
        elif not config.top_up_rounds:
            stopped = "top-up is off (gate.top_up_rounds=0)"
        elif number > config.top_up_rounds:
            stopped = f"gate.top_up_rounds={config.top_up_rounds} reached"
        else:
            try:
                attempts = generate({label: config.top_up_attempts_per_label for label in missing}, number, rows)
            except BudgetError as exc:
                stopped = f"round {number} not run: {exc}"
                continue
            if len(attempts):
                new = dedup(attempts, rows).assign(top_up_round=number)
                rows = pd.concat([rows, new], ignore_index=True)
                table = pd.concat([table, gate(new, top_up_config)], ignore_index=True)
                table.attrs = first_pass_attrs
            rounds.append(_round(number, missing, table))
    return TopUpOutcome(table, missing_before, rounds, stopped)


def _round(number: int, asked: list[str], table: pd.DataFrame) -> TopUpRound:
    mine = table[table["top_up_round"] == number]
    return TopUpRound(
        number=number,
        labels=asked,
        attempts=len(mine),
        new_texts=int((mine["dup_status"] == "unique").sum()),
        accepted=int(mine["accepted"].sum()),
        filled=sorted(set(asked) - set(missing_labels(table))),
    )


def dedup_top_up(
    attempts: pd.DataFrame,
    references: list[Reference],
    rows: pd.DataFrame,
    settings: DedupConfig,
    encode: Callable[[list[str]], object] | None = None,
) -> pd.DataFrame:
    """A round's ``attempts`` with the verdicts ``deduplicated`` would give them, had they been in the first pass.

    They are compared with the batch's ``references`` (held-out, seeds, earlier batches: core/dedup.py's
    :func:`references_for_batch`) and with the unique ``rows`` of the batch so far, which a repeat
    matches as ``exact_dup`` / ``near_dup`` (or ``semantic_dup``, with ``dedup.semantic_threshold``
    and the static model's ``encode``), naming the row it repeats.
    """
    own = rows[rows["dup_status"] == "unique"]
    known = [*references, Reference(list(own["row_id"]), list(own["text"]), "exact_dup", list(own["label"]))]
    table, _unique_signatures = dedup_batch(attempts, known, **settings.minhash_settings())
    if settings.semantic_threshold is not None:
        table = semantic_duplicates(table, known, encode, settings.semantic_threshold)
    return table


def texts_to_avoid(labels: Iterable[str], references: list[Reference], rows: pd.DataFrame) -> list[str]:
    """Texts of ``labels`` a top-up attempt would only repeat: earlier batches' unique rows and the batch's own.

    The template backend draws an example again when it equals one of them. The held-out split is
    not among them: nothing that generates text ever sees it (the dedup still compares with it).
    """
    wanted = set(labels)
    earlier = [
        text
        for reference in references
        if reference.verdict == "exact_dup"
        for text, label in zip(reference.texts, reference.labels or [])
        if label in wanted
    ]
    return [*earlier, *rows.loc[rows["label"].isin(wanted) & (rows["status"] == "ok"), "text"]]
