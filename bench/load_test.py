"""Load test: many batches registered and materialized, one after the other, on one Dagster instance.

What the factory pays per batch as a task's history grows (offline template generator, no network).

Setup, all under a temporary folder (``--workdir`` to choose it):

- a task ``hwu64_load`` derived from the shipped demo task ``data/tasks/hwu64/``: its ``task.yaml``
  with ``--labels`` of its labels (evenly spaced over the sorted list), the first
  ``--seeds-per-label`` seeds of each, the held-out split and real pool of those labels, and
  ``generation.per_label``, ``evaluation`` (repeats, ratio curve, attribution groups) and
  ``mix.synthetic_share`` from the options;
- the gate is the demo's except its two batch-level ceilings, ``max_near_dup_rate`` (default 1.0
  here) and ``yield_floor`` (default 0.0): the template generator recombining similar seeds batch
  after batch makes more duplicates of earlier batches as the history grows, and a batch failing
  its gate stops at ``gated``, which would leave the cross-batch stages after it unmeasured. Rows
  are still rejected one by one as in the demo, and the recorded duplicate rate and yield show
  whether the demo's thresholds (0.5, 0.3) would have stopped a batch;
- a persistent Dagster instance configured by the repository's ``dagster.yaml`` (concurrency
  pools, run coordinator), with its sqlite storage and folders under a temporary ``DAGSTER_HOME``,
  one for all batches;
- ``SYNTH_ASSETS_DATA_DIR`` set to the temporary data folder before the definitions load.

Batch k is a seed file, as the sensor sees one dropped into ``data/incoming/<task>/``: after the
task's seeds, ``--new-rows`` real rows per batch arrive, drawn (seeded, without replacement) from
the real pool minus the seeds and the held-out split, and batch k's file holds the newest
``--seeds-per-label`` rows of each label once batch k's rows arrived. So every batch differs (its
key is the file's hash, the generator recombines a rotating seed set), the real rows of version k
grow by ``--new-rows`` per batch as they would with a team labelling more examples, and the
generator's input does not grow. Refresh batches (the task's seeds again) were not used: at a
fixed synthetic share a version holds a fixed multiple of its real rows, so every version would
have the same size and the cost of training on a growing version would not show.

Per batch, in the order the sensor and the automation run them: ``open_batch`` (validate and
register the file; this reads every earlier batch's generated text), then the ``factory`` job in
process for that partition. Recorded per batch: the wall time of the registration and of the run;
each step's wall time (STEP_START to STEP_SUCCESS / STEP_FAILURE in the run's event log) and CPU
time (the process, all its threads, plus the evaluation's worker processes, read at those events:
on a shared machine CPU time is the steadier figure); the version's rows (real, synthetic), the
dedup reference (``index_size``: held-out + seeds + earlier unique rows + this batch's unique
rows), the gate's yield and duplicate rate, held-out macro-F1; process RSS; and the
instance-level costs: time to list the partitions, to compute ``batches_up_to`` and to fetch the
materialized partitions of an asset, and the bytes and files of the sqlite storage and of the lake.
The per-batch CSV goes to ``<workdir>/load_test.csv``; the summary (medians over the first, middle
and last 10 batches, the ratio last / first, a least-squares slope per stage) is printed and
written to ``<workdir>/summary.md``.

    .venv/bin/python bench/load_test.py --batches 20 --labels 8 --new-rows 4   # a check: ~2 min
    .venv/bin/python bench/load_test.py --labels 8 --new-rows 4                 # the recorded run: ~30 min

Speeds are recorded in bench/load_test_results.md, never asserted.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_TASK = PROJECT_ROOT / "data" / "tasks" / "hwu64"
TASK = "hwu64_load"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # the event log keeps everything; stderr shows progress
TIMING_REPEATS = 5  # instance queries are timed this many times per batch; the median is kept
WINDOW = 10  # batches per summary window (first, middle, last)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches to register and materialize (default 200)")
    parser.add_argument("--labels", type=int, default=16, help="labels of the demo task kept (default 16 of 64)")
    parser.add_argument("--seeds-per-label", type=int, default=10, help="demo seeds kept per label (default 10)")
    parser.add_argument("--per-label", type=int, default=20, help="generation.per_label (default 20)")
    parser.add_argument("--new-rows", type=int, default=8, help="new real rows from the pool in each batch's file (default 8)")
    parser.add_argument("--repeats", type=int, default=1, help="evaluation.repeats (default 1)")
    parser.add_argument("--ratio-curve", default="0.0,1.0", help="evaluation.ratio_curve (default 0.0,1.0)")
    parser.add_argument("--attribution-groups", type=int, default=2, help="evaluation.attribution_groups (default 2)")
    parser.add_argument("--synthetic-share", default="0.75", help="mix.synthetic_share, a number or auto (default 0.75)")
    parser.add_argument(
        "--max-near-dup-rate", type=float, default=1.0, help="gate.max_near_dup_rate (default 1.0; the demo's is 0.5, see above)"
    )
    parser.add_argument("--yield-floor", type=float, default=0.0, help="gate.yield_floor (default 0.0; the demo's is 0.3)")
    parser.add_argument("--draw-seed", type=int, default=0, help="random seed of the new rows drawn from the pool")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for data, instance and results (default: a temp dir)")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict:
    share = args.synthetic_share if args.synthetic_share == "auto" else float(args.synthetic_share)
    return {
        "batches": args.batches,
        "labels": args.labels,
        "seeds_per_label": args.seeds_per_label,
        "generation.per_label": args.per_label,
        "new_real_rows_per_batch": args.new_rows,
        "evaluation.repeats": args.repeats,
        "evaluation.ratio_curve": [float(x) for x in args.ratio_curve.split(",")],
        "evaluation.attribution_groups": args.attribution_groups,
        "mix.synthetic_share": share,
        "gate.max_near_dup_rate": args.max_near_dup_rate,
        "gate.yield_floor": args.yield_floor,
        "draw_seed": args.draw_seed,
    }


# --- the task ---------------------------------------------------------------------------------


def build_task(data_dir: Path, settings: dict) -> pd.DataFrame:
    """Write the derived task under ``data_dir/tasks``; return the real rows new batches draw from (shuffled)."""
    from synth_assets.core.text import normalize_text

    config = yaml.safe_load((DEMO_TASK / "task.yaml").read_text(encoding="utf-8"))
    every = sorted(config["labels"])
    count = settings["labels"]
    if not 1 <= count <= len(every):
        raise SystemExit(f"--labels must be between 1 and {len(every)}")
    picked = [every[(i * len(every)) // count] for i in range(count)]

    def read(name: str) -> pd.DataFrame:
        frame = pd.read_csv(DEMO_TASK / config[name], keep_default_na=False)
        return frame.loc[frame["label"].isin(picked), ["text", "label"]].reset_index(drop=True)

    seeds = read("seeds").groupby("label", sort=False).head(settings["seeds_per_label"]).reset_index(drop=True)
    counts = seeds["label"].value_counts().reindex(picked, fill_value=0)
    short = list(counts[counts < settings["seeds_per_label"]].index)
    if short:
        raise SystemExit(f"the demo task has fewer than {settings['seeds_per_label']} seeds for {short}")
    heldout, pool = read("heldout"), read("real_pool")

    task = copy.deepcopy(config)
    task["name"] = TASK
    task["labels"] = {label: config["labels"][label] for label in picked}
    task.setdefault("generation", {})["per_label"] = settings["generation.per_label"]
    task.setdefault("mix", {})["synthetic_share"] = settings["mix.synthetic_share"]
    task.setdefault("gate", {}).update(
        max_near_dup_rate=settings["gate.max_near_dup_rate"], yield_floor=settings["gate.yield_floor"]
    )
    task.setdefault("evaluation", {}).update(
        repeats=settings["evaluation.repeats"],
        ratio_curve=settings["evaluation.ratio_curve"],
        attribution_groups=settings["evaluation.attribution_groups"],
    )
    task_dir = data_dir / "tasks" / TASK
    task_dir.mkdir(parents=True)
    for name, frame in (("seeds", seeds), ("heldout", heldout), ("real_pool", pool)):
        frame.to_csv(task_dir / config[name], index=False)
        task[name] = config[name]
    (task_dir / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False, allow_unicode=True), encoding="utf-8")

    taken = set(seeds["text"].map(normalize_text)) | set(heldout["text"].map(normalize_text))
    fresh = pool.assign(key=pool["text"].map(normalize_text))
    fresh = fresh[~fresh["key"].isin(taken) & (fresh["key"] != "")].drop_duplicates("key")
    needed = settings["batches"] * settings["new_real_rows_per_batch"]
    if len(fresh) < needed:
        raise SystemExit(f"the real pool has {len(fresh)} unused rows for these labels; {needed} are needed: lower --new-rows")
    return fresh.sample(frac=1.0, random_state=settings["draw_seed"])[["text", "label"]].reset_index(drop=True)


def batch_file(inputs: Path, seeds_csv: Path, fresh: pd.DataFrame, number: int, new_rows: int, per_label: int) -> Path:
    """Batch ``number`` (1-based): the newest ``per_label`` rows of each label once its ``new_rows`` pool rows arrived.

    The arrival order is the task's seeds, then ``new_rows`` pool rows per batch; each label keeps
    a window of its newest rows, so the seed set the generator recombines rotates as rows arrive.
    """
    arrived = pd.concat([pd.read_csv(seeds_csv, keep_default_na=False), fresh.iloc[: number * new_rows]], ignore_index=True)
    rows = arrived.groupby("label", sort=False).tail(per_label)
    path = inputs / f"batch_{number:04d}.csv"
    rows.to_csv(path, index=False)
    return path


# --- the instance -----------------------------------------------------------------------------


def make_instance(home: Path):
    """A persistent instance with the repository's ``dagster.yaml`` (run coordinator, concurrency pools,
    telemetry), its storage sqlite and its folders under ``home``."""
    import dagster as dg

    home.mkdir(parents=True)
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8")) or {}
    config["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    for section, folder in (("local_artifact_storage", home), ("compute_logs", home / "logs")):
        if isinstance(config.get(section), dict) and "base_dir" in config[section].get("config", {}):
            config[section]["config"]["base_dir"] = str(folder)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def folder_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_of(pid: int | str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_cpu_seconds() -> dict[int, float]:
    """User + system CPU seconds of this process's live child processes (the evaluation's workers), by pid."""
    found = {}
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                found[int(pid)] = _cpu_of(pid)
            except (OSError, IndexError):
                continue  # it ended while we looked
    return found


def tree_cpu_seconds() -> dict[int, float]:
    """CPU seconds of this process (key 0) and of its live children, by pid."""
    return {0: _cpu_of("self")} | child_cpu_seconds()


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds this process and its children used since ``before`` (children that ended in between are not counted)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in tree_cpu_seconds().items())


def timed_median(call, repeats: int = TIMING_REPEATS) -> float:
    """Median wall time of ``call()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


# --- one batch --------------------------------------------------------------------------------


class StepClock:
    """CPU seconds of each step of a run: this whole process plus the evaluation's worker processes.

    Wall time on a shared machine moves with the other jobs on it; CPU time is the steadier figure.
    The in-process executor runs one step at a time in this process, so the process's CPU between a
    step's start and end is the step's, DuckDB's and BLAS's own threads included. Dagster hands
    every event to ``instance.handle_new_event`` as it happens; the clock wraps that method (and
    changes nothing else) to read the counters at each STEP_START and STEP_SUCCESS / STEP_FAILURE.
    """

    def __init__(self, instance) -> None:
        from dagster import DagsterEventType

        self.starts: dict[str, tuple[float, dict[int, float]]] = {}
        self.cpu: dict[str, float] = {}
        begin, end = DagsterEventType.STEP_START, (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
        handle = instance.handle_new_event

        def observed(event, **kwargs):
            dagster_event = event.dagster_event
            if dagster_event is not None and dagster_event.step_key is not None:
                if dagster_event.event_type == begin:
                    self.starts[dagster_event.step_key] = (time.process_time(), child_cpu_seconds())
                elif dagster_event.event_type in end and dagster_event.step_key in self.starts:
                    process, children = self.starts.pop(dagster_event.step_key)
                    workers = sum(seconds - children.get(pid, 0.0) for pid, seconds in child_cpu_seconds().items())
                    self.cpu[dagster_event.step_key] = time.process_time() - process + workers
            return handle(event, **kwargs)

        instance.handle_new_event = observed

    def take(self) -> dict[str, float]:
        cpu, self.cpu = self.cpu, {}
        return cpu


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS / STEP_FAILURE of each step of the run (event log timestamps)."""
    from dagster import DagsterEventType

    starts, seconds = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            seconds[event.step_key] = entry.timestamp - starts[event.step_key]
    return seconds


def materialization_metadata(result) -> dict[str, dict]:
    """Asset name -> its materialization's metadata values (plain Python)."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.to_user_string()] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return found


def run_batch(instance, clock: StepClock, defs, lake, task, key: str, path: Path, stages: list[str]) -> dict:
    from synth_assets.defs.partitions import open_batch

    cpu_before = tree_cpu_seconds()
    start, cpu_start = time.perf_counter(), time.process_time()
    open_batch(instance, lake, task, key, path, "seed_file")
    opened, opened_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    result = defs.resolve_job_def("factory").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
    )
    ran = time.perf_counter() - start
    cpu = cpu_since(cpu_before)
    steps, steps_cpu = step_seconds(instance, result.run_id), clock.take()
    meta = materialization_metadata(result)
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    row = {
        "success": result.success,
        "gate_passed": checks.get("gate_passed"),
        "open_batch_s": round(opened, 4),
        "open_batch_cpu_s": round(opened_cpu, 4),
        "run_s": round(ran, 4),
        "batch_s": round(opened + ran, 4),
        "batch_cpu_s": round(cpu, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "run_overhead_s": round(ran - sum(steps.values()), 4),
    }
    for stage in stages:
        row[f"{stage}_s"] = round(steps[stage], 4) if stage in steps else None
        row[f"{stage}_cpu_s"] = round(steps_cpu[stage], 4) if stage in steps_cpu else None
    extra = sorted(set(steps) - set(stages))
    row["other_steps_s"] = round(sum(steps[name] for name in extra), 4)
    row["other_steps_cpu_s"] = round(sum(steps_cpu.get(name, 0.0) for name in extra), 4)
    row["other_steps"] = ";".join(extra)
    row["run_overhead_cpu_s"] = round(cpu - opened_cpu - sum(steps_cpu.values()), 4)
    dedup, gate = meta.get("deduplicated", {}), meta.get("gated", {})
    version, scores = meta.get("training_set", {}), meta.get("heldout_eval", {})
    row |= {
        "attempted": gate.get("attempted"),
        "accepted": gate.get("accepted"),
        "yield": gate.get("yield"),
        "gate_duplicate_rate": gate.get("near_dup_rate"),
        "unique": dedup.get("unique"),
        "near_dup_rate": dedup.get("near_dup_rate"),
        "exact_dup_rate": dedup.get("exact_dup_rate"),
        "index_rows": dedup.get("index_size"),
        "signatures_loaded": dedup.get("signatures_loaded"),
        "version_real_rows": version.get("real_rows"),
        "version_synthetic_rows": version.get("synthetic_rows"),
        "version_rows": (version["real_rows"] + version["synthetic_rows"]) if version else None,
        "macro_f1": scores.get("macro_f1"),
        "seeds_only_macro_f1": scores.get("seeds_only_macro_f1"),
    }
    return row


def instance_costs(instance, key: str, home: Path, lake_root: Path) -> dict:
    import dagster as dg

    from synth_assets.defs.partitions import BATCHES, batches_up_to

    current, peak = rss_mib()
    storage = home / "storage"
    return {
        "partitions": len(instance.get_dynamic_partitions(BATCHES)),
        "list_partitions_ms": round(timed_median(lambda: instance.get_dynamic_partitions(BATCHES)), 3),
        "batches_up_to_ms": round(timed_median(lambda: batches_up_to(instance, key)), 3),
        "materialized_partitions_ms": round(
            timed_median(lambda: instance.get_materialized_partitions(dg.AssetKey("heldout_eval"))), 3
        ),
        "storage_mib": round(folder_bytes(storage) / 2**20, 3),
        "storage_files": sum(1 for entry in storage.rglob("*") if entry.is_file()),
        "lake_mib": round(folder_bytes(lake_root) / 2**20, 3),
        "lake_files": sum(1 for entry in lake_root.rglob("*") if entry.is_file()),
        "rss_mib": round(current, 1),
        "peak_rss_mib": round(peak, 1),
    }


# --- summary ----------------------------------------------------------------------------------


def windows(count: int) -> list[tuple[str, slice]]:
    """First, middle (ending at count/2) and last windows of up to WINDOW batches."""
    size = max(1, min(WINDOW, count // 3))
    middle_end = max(size, count // 2)
    spans = [(0, size), (middle_end - size, middle_end), (count - size, count)]
    return [(f"{lo + 1}-{hi}", slice(lo, hi)) for lo, hi in spans]


def summarize(frame: pd.DataFrame, stages: list[str]) -> str:
    spans = windows(len(frame))
    numbers = frame.index.to_numpy() + 1

    def line(name: str, column: str, unit: str, fmt: str) -> str | None:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().all():
            return None
        medians = [values.iloc[span].median() for _, span in spans]
        ratio = f"{medians[-1] / medians[0]:.2f}x" if medians[0] else "-"
        known = values.notna().to_numpy()
        slope = np.polyfit(numbers[known], values[known], 1)[0] * 100 if known.sum() > 1 else float("nan")
        cells = " | ".join(format(value, fmt) for value in medians)
        return f"| {name} | {unit} | {cells} | {ratio} | {slope:+{fmt}} |"

    def table(title: str, lines: list[tuple[str, str, str, str]]) -> str:
        header = " | ".join(f"batches {label}" for label, _ in spans)
        rows = [
            f"| {title} | unit | {header} | last / first | linear fit: change per 100 batches |",
            "| --- | --- | " + " | ".join("---:" for _ in spans) + " | ---: | ---: |",
        ]
        rows += [line(*spec) for spec in lines]
        return "\n".join(row for row in rows if row)

    parts = [("open_batch (register the file)", "open_batch")] + [(stage, stage) for stage in stages]
    parts += [("checks on gated (own steps)", "other_steps")]
    cpu = [(name, f"{column}_cpu_s", "s", ".3f") for name, column in parts]
    cpu += [
        ("rest: Dagster's run outside its steps", "run_overhead_cpu_s", "s", ".3f"),
        ("**whole batch (process + workers)**", "batch_cpu_s", "s", ".3f"),
    ]
    wall = [(name, f"{column}_s", "s", ".3f") for name, column in parts]
    wall += [
        ("run overhead (run - its steps)", "run_overhead_s", "s", ".3f"),
        ("**whole batch (open + run)**", "batch_s", "s", ".3f"),
        ("machine load average (1 min)", "load_average_1m", "", ".2f"),
    ]
    instance = [
        ("list the partitions", "list_partitions_ms", "ms", ".2f"),
        ("batches_up_to", "batches_up_to_ms", "ms", ".2f"),
        ("materialized partitions of heldout_eval", "materialized_partitions_ms", "ms", ".2f"),
        ("sqlite storage", "storage_mib", "MiB", ".2f"),
        ("sqlite storage files", "storage_files", "files", ".0f"),
        ("lake", "lake_mib", "MiB", ".2f"),
        ("lake files", "lake_files", "files", ".0f"),
        ("RSS after the batch", "rss_mib", "MiB", ".0f"),
        ("peak RSS", "peak_rss_mib", "MiB", ".0f"),
    ]
    data = [
        ("dedup reference (index rows)", "index_rows", "rows", ".0f"),
        ("version rows (real + synthetic)", "version_rows", "rows", ".0f"),
        ("version real rows", "version_real_rows", "rows", ".0f"),
        ("accepted rows of the batch", "accepted", "rows", ".0f"),
        ("gate yield", "yield", "", ".3f"),
        ("gate duplicate rate (exact + near)", "gate_duplicate_rate", "", ".3f"),
        ("held-out macro-F1 of the version", "macro_f1", "", ".4f"),
        ("seeds-only macro-F1", "seeds_only_macro_f1", "", ".4f"),
    ]
    first, last = spans[0], spans[-1]
    ratios = []
    for stage in ["seeds", "deduplicated", "training_set", "heldout_eval"]:
        said = []
        for kind, column in (("CPU", f"{stage}_cpu_s"), ("wall", f"{stage}_s")):
            values = pd.to_numeric(frame[column], errors="coerce")
            before, after = values.iloc[first[1]].median(), values.iloc[last[1]].median()
            said.append(f"{kind} {after / before:.2f}x ({before:.2f} s -> {after:.2f} s)")
        ratios.append(f"{stage} at batches {last[0]} takes {', '.join(said)} of batches {first[0]}")
    failed = list(frame.loc[~frame["success"].astype(bool), "batch"])
    gate_failed = list(frame.loc[frame["gate_passed"].eq(False), "batch"])
    notes = [
        f"batches: {len(frame)}; runs failed: {len(failed)} {failed[:20]}; gates failed: {len(gate_failed)} {gate_failed[:20]}",
        f"wall time of all batches: {frame['batch_s'].sum() / 60:.1f} min, CPU {frame['batch_cpu_s'].sum() / 60:.1f} min",
        "cells are medians over each window; the linear fit is least squares over every batch",
        *ratios,
    ]
    return (
        "\n\n".join(
            [
                table("CPU per batch", cpu),
                table("wall per batch", wall),
                table("instance and process", instance),
                table("data", data),
                "\n".join(f"- {note}" for note in notes),
            ]
        )
        + "\n"
    )


# --- main -------------------------------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    commit = git.stdout.strip()
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} at the start, commit {commit or 'unknown'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_of(args)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="synth_load_test_"))
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, home, inputs = workdir / "data", workdir / "dagster_home", workdir / "inputs"
    inputs.mkdir()
    started = datetime.now(UTC)
    header = f"load test {started:%Y-%m-%d %H:%M} UTC in {workdir}; {machine()}; settings {settings}"
    print(header, file=sys.stderr)

    fresh = build_task(data_dir, settings)
    os.environ["SYNTH_ASSETS_DATA_DIR"] = str(data_dir)  # before the definitions load
    instance = make_instance(home)
    clock = StepClock(instance)
    from synth_assets.definitions import defs as load_defs
    from synth_assets.defs.jobs import FACTORY_STAGES
    from synth_assets.defs.resources import FactoryResource

    defs = load_defs()
    resource_ = defs.resources["factory"]
    assert isinstance(resource_, FactoryResource) and Path(resource_.data_dir) == data_dir, "data dir not picked up"
    lake, task = resource_.lake(), resource_.task(TASK)
    from synth_assets.core.batches import key_for_file

    results_csv = workdir / "load_test.csv"
    rows: list[dict] = []
    try:
        for number in range(1, args.batches + 1):
            path = batch_file(inputs, task.seeds_path, fresh, number, args.new_rows, args.seeds_per_label)
            key = key_for_file(TASK, path)
            row = {"batch": number, "key": key}
            row |= run_batch(instance, clock, defs, lake, task, key, path, FACTORY_STAGES)
            row |= instance_costs(instance, key, home, lake.root)
            rows.append(row)
            pd.DataFrame(rows).to_csv(results_csv, index=False, quoting=csv.QUOTE_MINIMAL)
            print(
                f"[{number}/{args.batches}] {key} {'ok' if row['success'] else 'FAILED'} gate={row['gate_passed']} "
                f"open {row['open_batch_s']:.2f}s run {row['run_s']:.1f}s "
                f"(seeds {row['seeds_s'] or 0:.2f} gen {row['generated_s'] or 0:.2f} dedup {row['deduplicated_s'] or 0:.2f} "
                f"gate {row['gated_s'] or 0:.2f} mix {row['training_set_s'] or 0:.2f} eval {row['heldout_eval_s'] or 0:.2f} "
                f"overhead {row['run_overhead_s']:.2f}) cpu {row['batch_cpu_s']:.1f}s load {row['load_average_1m']:.1f} "
                f"version {row['version_rows']} rows, index {row['index_rows']} rows, "
                f"list {row['list_partitions_ms']:.1f}ms, sqlite {row['storage_mib']:.1f}MiB, RSS {row['rss_mib']:.0f}MiB",
                file=sys.stderr,
                flush=True,
            )
    finally:
        instance.dispose()
    summary = summarize(pd.DataFrame(rows), FACTORY_STAGES)
    text = f"{header}\n\nper-batch numbers: {results_csv}\n\n{summary}"
    (workdir / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
