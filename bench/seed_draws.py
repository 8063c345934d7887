"""What the published version is worth on held-out real data, over several random draws of the seeds.

Runs the factory's own core stages (generate, dedup, gate, validate, mix, evaluate: the code the
Dagster assets call) on a task, once per seed draw, without Dagster. Each draw takes ``per_label``
real examples per label from the task's real pool with
``pool.groupby('label').sample(n=per_label, random_state=draw)`` (the protocol of the shared
datasets' published baselines) and generates ``batches`` batches from them with:

- ``--generator template``: the offline template backend;
- ``--generator oracle``: the project's fake OpenAI server in oracle mode, answering every request
  with real unseen texts of the requested label (never a seed of the draw, never a held-out text),
  optionally with ``--faults bench`` (20% wrong labels, 30% duplicates, 5% truncated, 3% refusals,
  3% PII, 5% 429s). It measures what a perfect generator is worth, and how much of that each
  later stage keeps.

For every model in ``--models`` the mixing policy is chosen on validation folds of the seeds with
that model (as the factory does with the task's model), and scored on the held-out split next to:
the seeds alone, the seeds repeated to the version's size (more rows, no new text), the seeds plus
every accepted row unweighted, and all real data. Reported per draw: the version's gain with its
95% paired bootstrap interval and word (helped / no measurable difference / hurt), the share of
the seeds-to-all-real gap it closes, and the regret of the chosen policy against the best
candidate on held-out; then mean ± sd over draws.

    .venv/bin/python bench/seed_draws.py --task hwu64 [--draws 5] [--batches 2] [--generator oracle --faults bench]

Tasks are read from ``$SYNTH_ASSETS_DATA_DIR/tasks`` (``data/tasks`` by default), as the factory reads
them; make one from any labelled dataset with ``python -m synth_assets new-task``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from synth_assets.core.dedup import find_duplicates, references_for_batch
from synth_assets.core.evaluate import score_trainings
from synth_assets.core.gate import batch_verdict, gate_rows
from synth_assets.core.generation import LlmSession, generate_batch
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.llm_cache import open_response_cache
from synth_assets.core.mix import UNWEIGHTED, mix_version, policy_name
from synth_assets.core.quotas import attempts_for_batch
from synth_assets.core.task_config import LlmConfig, TaskConfig, load_task
from synth_assets.core.text import normalize_text
from synth_assets.core.validation import candidate_policies, validate_policies
from synth_assets.core.verdict import compare
from synth_assets.defs.resources import default_data_dir
from synth_assets.fake_openai import FAULT_PRESETS, FakeSettings, Faults, Oracle, serving_in_background

ORACLE_MODEL = "oracle"


def draw_seeds(pool: pd.DataFrame, draw: int, per_label: int) -> pd.DataFrame:
    sample = pool.groupby("label").sample(n=per_label, random_state=draw).reset_index(drop=True)
    return pd.DataFrame(
        {
            "seed_id": [f"draw{draw}:{i}" for i in range(len(sample))],
            "text": sample["text"],
            "label": sample["label"],
            "batch": "seeds",
        }
    )


@contextlib.contextmanager
def generator_for(task: TaskConfig, generator: str, faults: str, pool: pd.DataFrame, exclude: list[str]):
    """(the task set up for ``generator``, the LLM session or None) for one draw."""
    if generator == "template":
        yield task.model_copy(update={"generation": task.generation.model_copy(update={"backend": "template"})}), None
        return
    oracle = Oracle.from_frames(pool, exclude)
    settings = FakeSettings(oracle=oracle, faults=FAULT_PRESETS[faults] if faults != "none" else Faults())
    with serving_in_background(settings) as url, tempfile.TemporaryDirectory() as cache_dir:
        llm = LlmConfig(
            model=ORACLE_MODEL,
            base_url=f"{url}/v1",
            api_key_env="SYNTH_ASSETS_BENCH_KEY",
            examples_per_request=5,
            concurrency=16,
            requests_per_minute=600_000,
            tokens_per_minute=1_000_000_000,
            budget_usd_per_batch=1_000.0,
            budget_usd_per_task=10_000.0,
            price_per_million_tokens={"input": 0.0, "output": 0.0},
        )
        generation = task.generation.model_copy(update={"backend": "openai", "llm": llm})
        session = LlmSession(cache=open_response_cache(cache_dir), api_key="bench-key", replay=False)
        yield task.model_copy(update={"generation": generation}), session


def accepted_pool(task, seeds, heldout, batches: int, session, model: str) -> tuple[pd.DataFrame, list[float]]:
    """Accepted rows of ``batches`` batches made from ``seeds`` (quotas weighted by validation F1 as in the factory)."""
    accepted, earlier_unique, yields, feedback = [], pd.DataFrame(columns=["row_id", "text", "label"]), [], None
    for number in range(1, batches + 1):
        batch = f"{task.name}-{seeds['seed_id'].iloc[0].split(':')[0]}_{number}"
        attempts = attempts_for_batch(task, seeds["label"], feedback)
        generated = generate_batch(task, batch, seeds.assign(batch=batch), session=session, attempts=attempts).table
        references = references_for_batch(heldout, seeds, earlier_unique)
        verdicts = find_duplicates(generated, references, **task.dedup.minhash_settings())
        gated = gate_rows(verdicts, task.gate, task.labels, seeds)
        verdict = batch_verdict(gated, task.gate)
        yields.append(verdict["yield"])
        unique = verdicts.loc[verdicts["dup_status"] == "unique", ["row_id", "text", "label"]]
        earlier_unique = pd.concat([earlier_unique, unique])
        if verdict["passed"]:
            accepted.append(gated[gated["accepted"]].assign(batch_order=number - 1))
        pool = pd.concat(accepted, ignore_index=True) if accepted else gated.iloc[0:0].assign(batch_order=0)
        validation = validate_policies(task.name, batch, seeds, pool, task.mix, model)
        feedback = {"version": batch, "per_label_f1": validation.per_label_f1} if validation else None
    return pool, yields


def score_draw(task, seeds, pool, heldout, all_real, model: str, draw: int) -> dict:
    """The version the factory publishes with ``model``, and everything it is compared with."""
    version = f"{task.name}-draw{draw}"
    validation = validate_policies(task.name, version, seeds, pool, task.mix, model)
    chosen = validation.chosen_share
    shares = candidate_policies(task.mix)
    trainings = {f"policy {share}": mix_version(task.name, version, seeds, pool, task.mix, share)[0] for share in shares}
    trainings |= {"all_real": all_real, "seeds_only": seeds}
    version_rows = len(trainings[f"policy {UNWEIGHTED}"])
    trainings["repeated_seeds"] = pd.concat([seeds] * max(1, round(version_rows / len(seeds))), ignore_index=True)
    labels = sorted(task.labels)
    keep = tuple(trainings)
    scores, predictions = score_trainings(trainings, heldout, labels, model, keep_predictions=keep)
    published = f"policy {chosen}" if chosen != 0 else "seeds_only"
    f1 = {name: score.macro_f1 for name, score in scores.items()}
    gain = f1[published] - f1["seeds_only"]
    versus = compare(heldout["label"], predictions[published], predictions["seeds_only"], labels, gain, draw)
    gap = f1["all_real"] - f1["seeds_only"]
    policies = [name for name in trainings if name.startswith("policy ")]
    return {
        "draw": draw,
        "model": model,
        "chosen": policy_name(chosen),
        "validation_gain": validation.versus_seeds_only.get("delta_macro_f1"),
        "validation_se": validation.versus_seeds_only.get("se"),
        "synthetic_rows": len(pool),
        "seeds_only": round(f1["seeds_only"], 4),
        "version": round(f1[published], 4),
        "gain": round(gain, 4),
        "ci_low": round(versus.ci_low, 4),
        "ci_high": round(versus.ci_high, 4),
        "verdict": versus.word,
        "all_accepted_unweighted": round(f1[f"policy {UNWEIGHTED}"], 4),
        "repeated_seeds": round(f1["repeated_seeds"], 4),
        "all_real": round(f1["all_real"], 4),
        "gap_closed": round(gain / gap, 3) if gap > 0 else float("nan"),
        "regret": round(max(f1[name] for name in [*policies, "seeds_only"]) - f1[published], 4),
    }


def summarise(frame: pd.DataFrame) -> str:
    lines = []
    for model, rows in frame.groupby("model", sort=False):
        lines.append(f"\n{model}:")
        for column in ("seeds_only", "version", "gain", "all_accepted_unweighted", "repeated_seeds", "gap_closed", "regret"):
            values = rows[column].astype(float)
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            lines.append(f"  {column:<24} {values.mean():+.4f} ± {sd:.4f}  (min {values.min():+.4f}, max {values.max():+.4f})")
        lines.append(f"  all real                 {rows['all_real'].iloc[0]:.4f}")
        lines.append(f"  verdicts: {rows['verdict'].value_counts().to_dict()}; chosen: {rows['chosen'].value_counts().to_dict()}")
        lines.append(f"  draws more than 1 point below seeds only: {int((rows['gain'] < -0.01).sum())}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="hwu64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--generator", choices=("template", "oracle"), default="template")
    parser.add_argument("--faults", choices=("none", *FAULT_PRESETS), default="none")
    parser.add_argument("--models", default="embedding_logreg,tfidf_logreg")
    parser.add_argument("--attempts-per-label", type=int, help="generation.per_label of each batch (default: the task's)")
    args = parser.parse_args()
    task = load_task(Path(default_data_dir()) / "tasks" / args.task)
    if task.real_pool_path is None:
        print(f"task {task.name} has no real_pool to draw seeds from", file=sys.stderr)
        return 2
    if args.attempts_per_label:
        task = task.model_copy(update={"generation": task.generation.model_copy(update={"per_label": args.attempts_per_label})})
    models = args.models.split(",")
    pool = read_labelled_file(task.real_pool_path, task.labels, reject_duplicates=False)
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    all_real = pool[~pool["text"].map(normalize_text).isin(set(heldout["text"].map(normalize_text)))]
    started, rows = time.perf_counter(), []
    os.environ.setdefault("SYNTH_ASSETS_BENCH_KEY", "bench-key")
    for draw in range(args.draws):
        seeds = draw_seeds(pool, draw, args.per_label)
        exclude = [*seeds["text"], *heldout["text"]]
        with generator_for(task, args.generator, args.faults, pool, exclude) as (draw_task, session):
            synthetic, yields = accepted_pool(draw_task, seeds, heldout, args.batches, session, models[0])
        for model in models:
            scored = score_draw(draw_task, seeds, synthetic, heldout, all_real, model, draw)
            rows.append(scored | {"yield": round(statistics.mean(yields), 4)})
            print(f"draw {draw}: {rows[-1]}", file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    print(
        f"task {task.name}: {args.per_label} seeds per label, {args.batches} batch(es) of {task.generation.per_label} attempts "
        f"per label, generator {args.generator}, faults {args.faults}, {args.draws} draws, {time.perf_counter() - started:.0f}s\n"
    )
    print(frame.to_string(index=False))
    print(summarise(frame))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
