"""Where a batch's generation attempts are in the lake: its first pass, then its top-up rounds.

``generated`` and ``deduplicated`` hold the first pass. The top-up rounds (core/top_up.py) run
inside ``gated``, which writes their attempts, with the columns ``deduplicated`` would give them
and their ``top_up_round``, to the folder :data:`TOP_UP_TABLE`; ``gated`` itself holds every
attempt of both. Whatever counts a batch's attempts outside ``gated`` (spend, the dedup index of
later batches, the registry of synthetic text) reads both through here.
"""

from __future__ import annotations

import pandas as pd

from synth_assets.core.lake import Lake

TOP_UP_TABLE = "top_up"


def query_attempts(lake: Lake, batches: list[str], columns: list[str], where: str = "true") -> pd.DataFrame:
    """``columns`` of the deduplicated attempts of ``batches`` matching ``where``, in partition order.

    Per batch: its first pass (``deduplicated``: every one of ``batches`` must have it), then its
    top-up attempts, where ``gated`` has written them (a batch not gated yet has none to read).
    """
    sql = f"SELECT {', '.join([*columns, 'batch'])} FROM rows WHERE {where} ORDER BY batch_order, file_row_number"
    empty = [*columns, "batch"]
    first_pass = lake.query("deduplicated", batches, sql, empty_columns=empty)
    topped_up = [batch for batch in batches if lake.has_table(TOP_UP_TABLE, batch)]
    top_up = lake.query(TOP_UP_TABLE, topped_up, sql, empty_columns=empty)
    if not len(top_up):
        return first_pass[columns]
    position = {batch: number for number, batch in enumerate(batches)}
    both = pd.concat([first_pass, top_up], ignore_index=True) if len(first_pass) else top_up
    # A stable sort by batch keeps each batch's first pass before its top-up rows, each in file order.
    return both.sort_values("batch", key=lambda batch: batch.map(position), kind="stable")[columns].reset_index(drop=True)
