"""The one place resources are declared: where the factory's data lives."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from synth_assets.core.batches import task_of
from synth_assets.core.lake import Lake
from synth_assets.core.task_config import TaskConfig, load_task, load_tasks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_VARIABLE = "SYNTH_ASSETS_DATA_DIR"
REPLAY_VARIABLE = "SYNTH_ASSETS_LLM_REPLAY"


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_VARIABLE) or str(PROJECT_ROOT / "data")


class FactoryResource(dg.ConfigurableResource):
    """Task definitions, incoming seed files and the parquet lake under one data folder.

    ``<data_dir>/tasks/<task>/task.yaml`` defines tasks, ``<data_dir>/incoming/<task>/`` receives
    new seed files, ``<data_dir>/lake/`` is the system of record.
    """

    data_dir: str
    llm_replay: bool = False

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def tasks_root(self) -> Path:
        return self.root / "tasks"

    @property
    def incoming_root(self) -> Path:
        return self.root / "incoming"

    def lake(self) -> Lake:
        return Lake(self.root / "lake")

    @property
    def semantic_model_dir(self) -> Path:
        """The static embedding model for ``dedup.semantic_threshold`` (``fetch-semantic-model`` puts it there)."""
        return self.root / "models" / "potion-base-8M"

    @property
    def llm_cache_path(self) -> Path:
        return self.root / "cache" / "llm_responses.sqlite"

    def llm_api_key(self, task: TaskConfig) -> str | None:
        """The task's API key, read from its environment variable at the moment of use, never stored."""
        return os.environ.get(task.generation.llm.api_key_env) if task.generation.llm else None

    def task(self, name: str) -> TaskConfig:
        return load_task(self.tasks_root / name)

    def task_for_batch(self, batch: str) -> TaskConfig:
        return self.task(task_of(batch))

    def tasks(self) -> dict[str, TaskConfig]:
        return load_tasks(self.tasks_root)


@dg.definitions
def resources() -> dg.Definitions:
    replay = os.environ.get(REPLAY_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    return dg.Definitions(resources={"factory": FactoryResource(data_dir=default_data_dir(), llm_replay=replay)})
