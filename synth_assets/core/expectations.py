"""The batch-level expectations of a gated batch, as a Great Expectations 1.x suite built in code.

Run over the batch's accepted rows (what would enter a training set): it has rows, every
attempted label is covered, labels are the task's, no text is empty or outside the gate's length
bounds, no exact duplicate survived, the mean length stays within the seeds' range, and labels
are balanced (each attempted label's share within ``BALANCE_FACTOR`` of an even share). Great
Expectations is imported here only, when the check runs: importing it costs seconds, which the
rest of the factory should not pay.
"""

from __future__ import annotations

import pandas as pd

from synth_assets.core.task_config import GateConfig

# Label balance: every attempted label's share of the accepted rows within this factor of an even share.
BALANCE_FACTOR = 3.0


def _suite(gx, labels: list[str], attempted_labels: list[str], gate: GateConfig, seed_lengths: pd.Series):
    suite = gx.ExpectationSuite(name="gated_batch")
    for expectation in (
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="text"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="label"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=labels),
        gx.expectations.ExpectColumnDistinctValuesToContainSet(column="label", value_set=attempted_labels),
        gx.expectations.ExpectColumnValueLengthsToBeBetween(column="text", min_value=gate.min_chars, max_value=gate.max_chars),
        gx.expectations.ExpectColumnValuesToBeUnique(column="norm_key"),
        gx.expectations.ExpectColumnMeanToBeBetween(
            column="text_chars", min_value=float(seed_lengths.min()), max_value=float(seed_lengths.max())
        ),
    ):
        suite.add_expectation(expectation)
    return suite


def validate_batch(gated: pd.DataFrame, labels, gate: GateConfig, seed_texts: pd.Series) -> tuple[bool, pd.DataFrame]:
    """(all expectations met, one row per expectation: expectation, column, success, unexpected, observed)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    accepted = gated.loc[gated["accepted"], ["text", "label", "norm_key"]].assign(text_chars=lambda f: f["text"].str.len())
    attempted = sorted(gated["label"].unique())
    shares = accepted["label"].value_counts(normalize=True).reindex(attempted, fill_value=0.0)
    balance = pd.DataFrame({"label": attempted, "share": shares.to_numpy()})
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("lake")

    def batch_of(name: str, frame: pd.DataFrame):
        return (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe(name)
            .get_batch(batch_parameters={"dataframe": frame})
        )

    suite = _suite(gx, sorted(labels), attempted, gate, seed_texts.astype(str).str.len())
    uniform = 1.0 / max(len(attempted), 1)
    balance_suite = gx.ExpectationSuite(name="label_balance")
    balance_suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="share", min_value=uniform / BALANCE_FACTOR, max_value=min(1.0, uniform * BALANCE_FACTOR)
        )
    )
    results = [*batch_of("gated", accepted).validate(suite).results, *batch_of("labels", balance).validate(balance_suite).results]
    rows = [
        {
            "expectation": item.expectation_config.type,
            "column": item.expectation_config.kwargs.get("column", ""),
            "success": bool(item.success),
            "unexpected": int(item.result.get("unexpected_count") or 0),
            "observed": str(item.result.get("observed_value", ""))[:80],
        }
        for item in results
    ]
    table = pd.DataFrame(rows)
    return bool(table["success"].all()), table
