"""The one place resources are declared: where the factory's data lives."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from synth_assets.core.batches import task_of
from synth_assets.core.embeddings import model_dir
from synth_assets.core.lake import Lake
from synth_assets.core.llm_cache import AnswerCache, open_response_cache
from synth_assets.core.task_config import TaskConfig, load_task, load_tasks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_VARIABLE = "SYNTH_ASSETS_DATA_DIR"
REPLAY_VARIABLE = "SYNTH_ASSETS_LLM_REPLAY"
LAKE_URL_VARIABLE = "SYNTH_ASSETS_LAKE_URL"  # e.g. s3://bucket/prefix/lake; unset: <data_dir>/lake
CACHE_URL_VARIABLE = "SYNTH_ASSETS_CACHE_URL"  # e.g. s3://bucket/prefix/cache; unset: <data_dir>/cache
LOCAL_FOR_REMOTE_LAKE = "lake_local"  # <data_dir>/lake_local: the audit trail of a lake in an object store


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_VARIABLE) or str(PROJECT_ROOT / "data")


class FactoryResource(dg.ConfigurableResource):
    """Task definitions, incoming seed files and the parquet lake under one data folder.

    ``<data_dir>/tasks/<task>/task.yaml`` defines tasks, ``<data_dir>/incoming/<task>/`` receives
    new seed files, ``<data_dir>/lake/`` is the system of record and ``<data_dir>/cache/`` the
    LLM response cache. The lake and the cache can each be moved to an object store
    (``lake_url``, ``cache_url`` = ``s3://bucket/prefix``); tasks and incoming files stay local.
    S3 credentials never appear here: botocore reads them from the environment
    (``AWS_ACCESS_KEY_ID``...), an AWS profile or the instance role.
    """

    data_dir: str
    llm_replay: bool = False
    lake_url: str = Field(default="", description="Where the lake is: empty for <data_dir>/lake, or s3://bucket/prefix.")
    cache_url: str = Field(
        default="", description="Where the LLM response cache is: empty for <data_dir>/cache (SQLite), or s3://bucket/prefix."
    )
    s3: S3Resource | None = Field(
        default=None,
        description="Endpoint, region and profile for s3:// locations; unset, botocore's environment settings apply "
        "(AWS_ENDPOINT_URL_S3, AWS_DEFAULT_REGION, AWS_PROFILE). Leave its key fields unset.",
    )

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
        if not self.lake_url:
            return Lake(self.root / "lake")
        return Lake(self.lake_url, self.storage_options(self.lake_url), local_root=self.root / LOCAL_FOR_REMOTE_LAKE)

    def llm_cache(self) -> AnswerCache:
        """The LLM response cache: SQLite under ``<data_dir>/cache/``, or one object per answer under ``cache_url``."""
        return open_response_cache(self.cache_url or self.root / "cache", self.storage_options(self.cache_url))

    def storage_options(self, url: str) -> dict:
        """The fsspec options of ``url``: for ``s3://``, s3fs settings taken from ``s3`` (none for a local path)."""
        if not url.startswith(("s3://", "s3a://")):
            return {}
        options: dict = {"use_listings_cache": False}  # several processes write: never trust a cached listing
        if self.s3 is None:
            return options
        s3 = self.s3
        if s3.aws_access_key_id or s3.aws_secret_access_key or s3.aws_session_token:
            raise ValueError(
                "factory.s3 holds AWS keys: leave aws_access_key_id, aws_secret_access_key and aws_session_token unset and "
                "give credentials through the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), AWS_PROFILE or a role"
            )
        client = {"endpoint_url": s3.endpoint_url, "region_name": s3.region_name, "verify": s3.verify}
        options["client_kwargs"] = {name: value for name, value in client.items() if value is not None}
        options["config_kwargs"] = {"retries": {"max_attempts": s3.max_attempts, "mode": "standard"}}
        options |= {"use_ssl": s3.use_ssl, "anon": s3.use_unsigned_session}
        if s3.profile_name:
            options["profile"] = s3.profile_name
        return options

    @property
    def semantic_model_dir(self) -> Path:
        """The static embedding model for ``dedup.semantic_threshold`` and evaluation (``fetch-semantic-model`` puts it there)."""
        return model_dir()

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
    factory = FactoryResource(
        data_dir=default_data_dir(),
        llm_replay=replay,
        lake_url=os.environ.get(LAKE_URL_VARIABLE, "").strip(),
        cache_url=os.environ.get(CACHE_URL_VARIABLE, "").strip(),
    )
    return dg.Definitions(resources={"factory": factory})
