"""Runs the real factory job on a real (ephemeral) Dagster instance over a temporary data folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from synth_assets.defs.partitions import open_batch
from synth_assets.defs.resources import DATA_DIR_VARIABLE, FactoryResource


@dataclass
class Factory:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    resource: FactoryResource

    @property
    def lake(self):
        return self.resource.lake()

    def open(self, name: str, source: Path | None = None, task: str = "home") -> str:
        config = self.resource.task(task)
        kind = "seed_file" if source else "refresh"
        return open_batch(self.instance, self.lake, config, f"{task}-{name}", source or config.seeds_path, kind)

    def run(self, key: str) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("factory").execute_in_process(
            partition_key=key, instance=self.instance, raise_on_error=False
        )


def build_factory(data_dir: Path, monkeypatch, instance: dg.DagsterInstance) -> Factory:
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    from synth_assets.definitions import defs

    definitions = defs()
    resource = definitions.resources["factory"]
    assert Path(resource.data_dir) == data_dir, "the factory resource must follow SYNTH_ASSETS_DATA_DIR"
    return Factory(definitions, instance, resource)


def run_batches(factory: Factory, names: list[str]) -> list[str]:
    """Open and run one batch per name, in order; every run must succeed. Returns their partition keys."""
    keys = []
    for name in names:
        keys.append(factory.open(name))
        result = factory.run(keys[-1])
        assert result.success, [event.message for event in result.all_events if event.is_failure]
    return keys
