"""The definitions load, and the asset graph is the one DESIGN.md describes (a change is a visible diff)."""

import dagster as dg
import pytest

from synth_assets.definitions import defs
from synth_assets.defs.jobs import FACTORY_STAGES

EXPECTED_GRAPH = {
    "seeds": [],
    "generated": ["seeds"],
    "deduplicated": ["generated"],
    "gated": ["deduplicated"],
    "training_set": ["gated"],
    "heldout_eval": ["training_set"],
    "finetune_job": ["training_set"],
}
EXPECTED_CHECKS = {
    ("gated", "reviewed_acceptance", True),
    ("deduplicated", "duplicate_rate_within_history", False),
    ("gated", "gate_passed", True),
    ("gated", "gated_expectations", False),
    ("heldout_eval", "synthetic_data_helped", False),
    ("heldout_eval", "not_below_previous_version", False),
    ("heldout_eval", "diversity_not_collapsing", False),
    ("gated", "tasks_fresh", False),
}


@pytest.fixture
def definitions(instance):
    # Loading definitions reads state from the current instance, so a live one must exist.
    return defs()


@pytest.fixture
def graph(definitions):
    return definitions.resolve_asset_graph()


def test_asset_graph_matches_the_design(graph):
    actual = {
        key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert actual == EXPECTED_GRAPH


def test_every_asset_is_partitioned_by_the_one_batches_set(graph):
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "batches"


def test_checks_and_their_blocking_flags(graph):
    checks = {(key.asset_key.to_user_string(), key.name, graph.get_check_spec(key).blocking) for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS


def test_the_factory_job_runs_the_six_stages_and_leaves_the_fine_tuning_handoff_out(definitions, graph):
    selected = definitions.resolve_job_def("factory").asset_layer.selected_asset_keys
    assert sorted(key.to_user_string() for key in selected) == sorted(FACTORY_STAGES)
    assert graph.get(dg.AssetKey("finetune_job")).group_name == "handoff"


def test_every_asset_has_a_code_version(graph):
    assert all(graph.get(key).code_version for key in graph.get_all_asset_keys())


def test_job_sensor_schedule_and_in_process_executor(definitions):
    assert definitions.resolve_job_def("factory") is not None
    sensors = {s.name: s.default_status for s in definitions.sensors}
    assert sensors == dict.fromkeys(
        ["factory_automation", "incoming_seed_files", "llm_batches", "task_freshness"], dg.DefaultSensorStatus.RUNNING
    )
    assert sorted(s.name for s in definitions.schedules) == ["refresh_hwu64", "refresh_hwu64_llm"], "one per shipped task"
    assert definitions.executor.name == "in_process"
    assert set(definitions.resources) == {"factory"}
