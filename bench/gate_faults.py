"""Precision and recall of the quality gate, fault by fault, on a demo batch with planted faults.

Generates one template batch of the demo task from its seeds, plants faults into a share of the
rows (each planted row gets exactly one fault), runs the factory's own dedup and gate on it
(``dedup_batch`` + ``gate_rows``, the code the assets call), and reports per fault: recall (planted
rows the gate rejected for that fault's reason) and precision (rows rejected for that reason that
were planted with that fault).

    .venv/bin/python bench/gate_faults.py [--task hwu64] [--share 0.04]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from synth_assets.core.dedup import find_duplicates, references_for_batch
from synth_assets.core.gate import gate_rows
from synth_assets.core.generation import generate_batch
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.task_config import load_task
from synth_assets.fake_openai import PII

ROOT = Path(__file__).resolve().parents[1]
REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I cannot provide that.",
    "I cannot assist with this.",
]


def plant(rows: pd.DataFrame, seeds: pd.DataFrame, labels: list[str], share: float, rng) -> pd.DataFrame:
    """``rows`` with ``fault`` (the planted fault or "") and that fault applied to a share of them."""
    rows = rows.assign(fault="").reset_index(drop=True)
    faults = {
        "label_disputed": lambda text, label: (text, rng.choice([other for other in labels if other != label])),
        "refusal": lambda text, label: (str(rng.choice(REFUSALS)), label),
        "pii": lambda text, label: (PII[rng.integers(len(PII))](text), label),
        "list_marker": lambda text, label: (f"{rng.integers(1, 9)}. {text}", label),
        "meta_text": lambda text, label: (f"Here are the examples: {text}", label),
        "copies_seed": lambda text, label: (seeds["text"].iloc[rng.integers(len(seeds))] + "!", label),
    }
    chosen = rng.permutation(len(rows))[: int(share * len(rows)) * len(faults)]
    for number, position in enumerate(chosen):
        name = list(faults)[number % len(faults)]
        text, label = faults[name](rows.at[position, "text"], rows.at[position, "label"])
        rows.loc[position, ["text", "label", "fault"]] = [text, label, name]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="hwu64")
    parser.add_argument("--share", type=float, default=0.04, help="share of rows per fault")
    args = parser.parse_args()
    task = load_task(ROOT / "data" / "tasks" / args.task)
    seeds = read_labelled_file(task.seeds_path, task.labels)
    seeds = seeds.assign(seed_id=[f"seed:{line}" for line in seeds["line"]])
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    rows = generate_batch(task, f"{task.name}-faults", seeds.assign(batch="faults")).table
    rows = plant(rows, seeds, sorted(task.labels), args.share, np.random.default_rng(0))
    references = references_for_batch(heldout, seeds, pd.DataFrame(columns=["row_id", "text", "label"]))
    verdicts = find_duplicates(
        rows,
        references,
        **task.dedup.minhash_settings(),
    )
    gated = gate_rows(verdicts, task.gate, task.labels, seeds)
    report = []
    for fault in sorted(set(gated["fault"]) - {""}):
        planted = gated["fault"] == fault
        caught = gated["reject_reason"] == fault
        report.append(
            {
                "fault": fault,
                "planted": int(planted.sum()),
                "rejected_for_it": int(caught.sum()),
                "precision": round(float((planted & caught).sum() / max(caught.sum(), 1)), 3),
                "recall": round(float((planted & caught).sum() / max(planted.sum(), 1)), 3),
                "rejected_for_another_reason": int((planted & ~caught & ~gated["accepted"]).sum()),
                "unplanted_rejected_for_it": int((~planted & caught).sum()),
            }
        )
    clean = gated["fault"] == ""
    print(f"task {task.name}: {len(gated)} rows, {int((~clean).sum())} planted faults ({args.share:.0%} of rows per fault)\n")
    print(pd.DataFrame(report).to_string(index=False))
    fault_reasons = set(gated["fault"]) - {"", "copies_seed"}
    false_alarms = int((clean & gated["reject_reason"].isin(fault_reasons)).sum())
    print(f"\nunplanted rows rejected by a probe or the label check: {false_alarms}")
    print("(unplanted copies_seed rejections are near-copies of seeds the generator made itself, each verified by exact Jaccard)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
