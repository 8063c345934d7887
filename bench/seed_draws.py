"""Held-out macro-F1 of seeds-only vs seeds + synthetic over several random draws of the seeds.

Runs the factory's own core stages (generate, dedup, gate, mix, evaluate: the exact code the
Dagster assets call) on the demo task, once per seed draw, without Dagster. Each draw takes
``per_label`` real examples per label from the task's real pool with
``pool.groupby('label').sample(n=per_label, random_state=draw)`` (the protocol of the shared
datasets' published baselines), generates ``batches`` batches (each weighted by the previous
one's validation F1, as the factory does), chooses the synthetic share on folds of the seeds
(``mix.synthetic_share``, or ``--share``), and scores on the held-out split: seeds only, seeds +
synthetic at the chosen share and at 0.75, the seeds repeated to the same size, and all real data.

    .venv/bin/python bench/seed_draws.py [--task hwu64] [--draws 5] [--batches 2] [--share auto]

Tasks are read from ``$SYNTH_ASSETS_DATA_DIR/tasks`` (``data/tasks`` by default), as the factory reads them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from synth_assets.core.dedup import find_duplicates, references_for_batch
from synth_assets.core.evaluate import score_trainings, train_and_score
from synth_assets.core.gate import batch_verdict, gate_rows
from synth_assets.core.generation import generate_batch
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.mix import mix_version
from synth_assets.core.quotas import attempts_for_batch
from synth_assets.core.task_config import load_task
from synth_assets.core.validation import validate_shares
from synth_assets.defs.resources import default_data_dir


def run_draw(task, pool: pd.DataFrame, heldout: pd.DataFrame, draw: int, per_label: int, batches: int) -> dict:
    sample = pool.groupby("label").sample(n=per_label, random_state=draw).reset_index(drop=True)
    seeds = pd.DataFrame(
        {
            "seed_id": [f"draw{draw}:{i}" for i in range(len(sample))],
            "text": sample["text"],
            "label": sample["label"],
            "batch": "seeds",
        }
    )
    version = f"{task.name}-draw{draw}"
    shares = task.mix.candidate_shares if task.mix.synthetic_share == "auto" else [task.mix.synthetic_share]
    accepted, earlier_unique, yields, feedback = [], pd.DataFrame(columns=["row_id", "text", "label"]), [], None
    for number in range(1, batches + 1):
        batch = f"{version}_{number}"
        # As the factory does: the batch's quotas follow the previous version's validation F1.
        attempts = attempts_for_batch(task, seeds["label"], feedback)
        generated = generate_batch(task, batch, seeds.assign(batch=batch), attempts=attempts).table
        references = references_for_batch(heldout, seeds, earlier_unique)
        verdicts = find_duplicates(generated, references, **task.dedup.minhash_settings())
        gated = gate_rows(verdicts, task.gate, task.labels, seeds)
        verdict = batch_verdict(gated, task.gate)
        yields.append(verdict["yield"])
        earlier_unique = pd.concat(
            [earlier_unique, verdicts.loc[verdicts["dup_status"] == "unique", ["row_id", "text", "label"]]]
        )
        if verdict["passed"]:
            accepted.append(gated[gated["accepted"]].assign(batch_order=number - 1))
        pool_rows = pd.concat(accepted, ignore_index=True)
        validation = validate_shares(task.name, batch, seeds, pool_rows, task.mix, shares, task.evaluation.model)
        feedback = {"version": batch, "per_label_f1": validation.per_label_f1}
    chosen = validation.chosen_share
    labels = sorted(task.labels)
    trainings = {
        "seeds_only": seeds,
        "mixed": mix_version(task.name, version, seeds, pool_rows, task.mix, chosen)[0],
        "mixed_at_0.75": mix_version(task.name, version, seeds, pool_rows, task.mix, 0.75)[0],
    }
    # The alternative a skeptic names first: the seeds copied until the set is as large. It weakens
    # the classifier's regularisation the same way, without any new text.
    trainings["repeated_seeds"] = pd.concat([seeds] * round(len(trainings["mixed"]) / len(seeds)), ignore_index=True)
    scores, _ = score_trainings(trainings, heldout, labels, task.evaluation.model)
    return {
        "draw": draw,
        "yield": round(statistics.mean(yields), 3),
        "chosen_share": chosen,
        "synthetic_rows": int((trainings["mixed"]["origin"] == "synthetic").sum()),
        "seeds_only_macro_f1": round(scores["seeds_only"].macro_f1, 4),
        "mixed_macro_f1": round(scores["mixed"].macro_f1, 4),
        "mixed_at_0.75_macro_f1": round(scores["mixed_at_0.75"].macro_f1, 4),
        "repeated_seeds_macro_f1": round(scores["repeated_seeds"].macro_f1, 4),
        "seeds_only_accuracy": round(scores["seeds_only"].accuracy, 4),
        "mixed_accuracy": round(scores["mixed"].accuracy, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="hwu64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--share", default=None, help="override mix.synthetic_share (a number or auto)")
    args = parser.parse_args()
    task = load_task(Path(default_data_dir()) / "tasks" / args.task)
    if args.share is not None:
        share = args.share if args.share == "auto" else float(args.share)
        task = task.model_copy(update={"mix": task.mix.model_copy(update={"synthetic_share": share})})
    if task.real_pool_path is None:
        print(f"task {task.name} has no real_pool to draw seeds from", file=sys.stderr)
        return 2
    pool = read_labelled_file(task.real_pool_path, task.labels, reject_duplicates=False)
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    started = time.perf_counter()
    usable_pool = pool[~pool["text"].isin(set(heldout["text"]))]
    all_real = train_and_score("all_real", usable_pool, heldout, sorted(task.labels), task.evaluation.model)
    rows = []
    for draw in range(args.draws):
        rows.append(run_draw(task, pool, heldout, draw, args.per_label, args.batches))
        print(f"draw {draw}: {rows[-1]}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    gain = frame["mixed_macro_f1"] - frame["seeds_only_macro_f1"]
    print(
        f"task {task.name}: {args.per_label} seeds per label, {args.batches} batch(es) of "
        f"{task.generation.per_label} attempts per label, synthetic share {task.mix.synthetic_share}, "
        f"{args.draws} draws, {time.perf_counter() - started:.0f}s\n"
    )
    print(frame.to_string(index=False))
    print(f"all real ({len(usable_pool)} rows): macro-F1 {all_real.macro_f1:.4f}, accuracy {all_real.accuracy:.4f}")
    print(f"chosen shares: {frame['chosen_share'].value_counts().sort_index().to_dict()}")
    columns = ("seeds_only_macro_f1", "mixed_macro_f1", "mixed_at_0.75_macro_f1", "repeated_seeds_macro_f1")
    for column in (*columns, "seeds_only_accuracy", "mixed_accuracy"):
        print(f"{column}: {frame[column].mean():.4f} ± {frame[column].std(ddof=1):.4f}")
    print(f"macro-F1 gain: {gain.mean():+.4f} ± {gain.std(ddof=1):.4f} (min {gain.min():+.4f}, max {gain.max():+.4f})")
    over_copies = frame["mixed_macro_f1"] - frame["repeated_seeds_macro_f1"]
    print(f"macro-F1 gain over the seeds repeated to the same size: {over_copies.mean():+.4f} ± {over_copies.std(ddof=1):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
