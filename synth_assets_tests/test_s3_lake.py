"""The lake and the LLM response cache on S3, against moto's S3 server on 127.0.0.1 (no AWS, no internet).

Unit tests run the same lake behaviour on a local folder and on a bucket; one pipeline run (two
batches of the small home task on the openai backend, against the fake OpenAI server) puts the
lake and the cache in the bucket and is then inspected through boto3, as an operator would.
"""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from synth_assets.core import audit
from synth_assets.core.lake import Lake, LakeError, atomic_write
from synth_assets.core.llm_cache import CachedAnswer, ObjectStoreResponseCache, open_response_cache
from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets.defs.resources import CACHE_URL_VARIABLE, LAKE_URL_VARIABLE, LOCAL_FOR_REMOTE_LAKE, FactoryResource
from synth_assets_tests.conftest import write_task
from synth_assets_tests.factory_harness import build_factory
from synth_assets_tests.fake_server import running_fake_openai
from synth_assets_tests.test_llm_generation import API_KEY, write_llm_task

_buckets = itertools.count()


@dataclass
class MotoS3:
    url: str
    client: object  # boto3 S3 client on the moto server

    def new_bucket(self) -> str:
        name = f"lake-{next(_buckets)}"
        self.client.create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """Every object's key and ETag (the MD5 of its bytes for a single PUT)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _s3_environment(monkeypatch, url: str | None) -> None:
    """Dummy credentials and moto's address, the way a deployment gives them: environment only."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    if url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    else:
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        _s3_environment(patch, url)
        yield MotoS3(url, boto3.client("s3", endpoint_url=url))
    server.stop()


@pytest.fixture
def s3_env(moto_s3, monkeypatch):
    _s3_environment(monkeypatch, moto_s3.url)
    return moto_s3


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    """The same Lake API on a local folder and on a fresh bucket."""
    if request.param == "local":
        return Lake(tmp_path / "lake")
    moto = request.getfixturevalue("s3_env")
    return Lake(f"s3://{moto.new_bucket()}/lake", {"use_listings_cache": False})


def _files(lake: Lake) -> list[str]:
    """Every file under the lake root, relative to it."""
    if isinstance(lake.root, Path):
        return sorted(path.relative_to(lake.root).as_posix() for path in lake.root.rglob("*") if path.is_file())
    prefix = lake.root.path + "/"
    return sorted(name.removeprefix(prefix) for name in lake.root.fs.find(lake.root.path))


# --- the lake on both backends ---------------------------------------------------------------


def test_every_kind_of_file_round_trips(lake):
    frame = pd.DataFrame({"text": ["a", "b"], "ids": [["x"], ["y", "z"]]})
    lake.write_table("generated", "t-1", frame)
    lake.write_json("gated", "t-1", {"passed": True, "rows": 2})
    lake.write_csv("review_requests", "t-1", pd.DataFrame({"row_id": ["r1"], "verdict": [""]}))
    lake.write_text("exports", "t-1.md", "# card\n")
    back = lake.read_table("generated", "t-1")
    assert back["text"].tolist() == ["a", "b"] and [list(v) for v in back["ids"]] == [["x"], ["y", "z"]]
    assert lake.read_json("gated", "t-1") == {"passed": True, "rows": 2}
    assert lake.read_csv("review_requests", "t-1", dtype=str, keep_default_na=False).to_dict("records") == [
        {"row_id": "r1", "verdict": ""}
    ]
    assert lake.read_text("exports", "t-1.md") == "# card\n"
    assert lake.has_table("generated", "t-1") and not lake.has_table("generated", "t-2")
    assert _files(lake) == ["exports/t-1.md", "gated/t-1.json", "generated/t-1.parquet", "review_requests/t-1.csv"]


def test_a_failed_write_leaves_the_previous_file_whole_and_nothing_partial(lake):
    lake.write_table("seeds", "t-1", pd.DataFrame({"text": ["kept"]}))

    def half_then_crash(temp: Path) -> None:
        temp.write_bytes(b"PAR1 half a partition")
        raise OSError("disk full")

    for target in (lake.table_path("seeds", "t-1"), lake.table_path("seeds", "t-2")):
        with pytest.raises(OSError, match="disk full"):
            atomic_write(target, half_then_crash)
    with pytest.raises(ValueError, match="object"):
        lake.write_table("seeds", "t-1", pd.DataFrame({"text": [object()]}))
    assert lake.read_table("seeds", "t-1")["text"].tolist() == ["kept"]
    assert _files(lake) == ["seeds/t-1.parquet"]


def test_missing_partitions_raise_the_same_lake_error(lake):
    lake.write_table("seeds", "t-1", pd.DataFrame({"text": ["a"]}))
    missing = str(lake.table_path("seeds", "t-2"))
    with pytest.raises(LakeError, match=f"missing seeds partitions: {missing}; materialize them first"):
        lake.query("seeds", ["t-1", "t-2"])
    with pytest.raises(LakeError, match="materialize gated for partition t-9"):
        lake.read_json("gated", "t-9")
    with pytest.raises(LakeError, match="materialize seeds for partition t-9"):
        lake.read_table("seeds", "t-9")


def test_query_reads_partitions_in_partition_order(lake):
    lake.write_table("seeds", "t-b", pd.DataFrame({"text": ["first"], "n": [1]}))
    lake.write_table("seeds", "t-a", pd.DataFrame({"text": ["second", "third"], "n": [2, 3]}))
    rows = lake.query("seeds", ["t-b", "t-a"], "SELECT text, batch_order FROM rows ORDER BY batch_order, file_row_number")
    assert rows["text"].tolist() == ["first", "second", "third"] and rows["batch_order"].tolist() == [0, 1, 1]


def test_a_partition_has_the_same_bytes_in_a_bucket_as_on_disk(s3_env, tmp_path):
    frame = pd.DataFrame({"text": ["a", "b"], "n": [1, 2], "ids": [["x"], []]})
    local = Lake(tmp_path).write_table("seeds", "t-1", frame).read_bytes()
    bucket = s3_env.new_bucket()
    Lake(f"s3://{bucket}/lake").write_table("seeds", "t-1", frame)
    assert s3_env.read(bucket, "lake/seeds/t-1.parquet") == local


def test_a_lake_in_a_bucket_needs_a_local_folder_for_its_audit_trail(s3_env, tmp_path):
    bucket = s3_env.new_bucket()
    with pytest.raises(LakeError, match="give Lake a local_root"):
        _ = Lake(f"s3://{bucket}/lake").local_root
    assert Lake(f"s3://{bucket}/lake", local_root=tmp_path).local_root == tmp_path
    assert Lake(tmp_path / "lake").local_root == tmp_path / "lake"


# --- the response cache in a bucket ----------------------------------------------------------


def _answer(key: str, content: str = '{"examples": []}') -> CachedAnswer:
    return CachedAnswer(key, "gpt-4o-mini", content, None, "stop", 10, 5, 0.0001, "sync")


def test_the_object_store_cache_returns_stored_answers_and_skips_missing_keys(s3_env):
    bucket = s3_env.new_bucket()
    cache = open_response_cache(f"s3://{bucket}/cache")
    assert isinstance(cache, ObjectStoreResponseCache)
    keys = [f"{n:02x}" + "ab" * 31 for n in range(20)]
    for key in keys[:12]:
        cache.put(_answer(key))
    found = cache.get_many(keys + keys[:3])
    assert sorted(found) == sorted(keys[:12]) and found[keys[0]] == _answer(keys[0]) and len(cache) == 12
    assert sorted(s3_env.objects(bucket)) == sorted(f"cache/llm/{key[:2]}/{key}.json" for key in keys[:12])
    assert cache.get_many([]) == {}


def test_writing_a_cached_answer_twice_writes_the_same_bytes(s3_env):
    bucket = s3_env.new_bucket()
    cache = open_response_cache(f"s3://{bucket}/cache")
    cache.put(_answer("ff" * 32))
    before = s3_env.objects(bucket)
    cache.put(_answer("ff" * 32))
    assert s3_env.objects(bucket) == before


def test_a_local_cache_location_is_the_sqlite_file(tmp_path):
    cache = open_response_cache(tmp_path / "cache")
    try:
        cache.put(_answer("aa" * 32))
        assert cache.path == tmp_path / "cache" / "llm_responses.sqlite" and len(cache.get_many(["aa" * 32])) == 1
    finally:
        cache.close()


# --- configuration ---------------------------------------------------------------------------


def test_the_s3_resource_settings_reach_the_lake_and_the_cache(moto_s3, monkeypatch, tmp_path):
    _s3_environment(monkeypatch, None)  # no endpoint in the environment: it must come from the resource
    bucket = moto_s3.new_bucket()
    factory = FactoryResource(
        data_dir=str(tmp_path),
        lake_url=f"s3://{bucket}/lake",
        cache_url=f"s3://{bucket}/cache",
        s3=S3Resource(endpoint_url=moto_s3.url, region_name="us-east-1", max_attempts=2),
    )
    factory.lake().write_json("gated", "t-1", {"passed": True})
    factory.llm_cache().put(_answer("cd" * 32))
    assert sorted(moto_s3.objects(bucket)) == ["cache/llm/cd/" + "cd" * 32 + ".json", "lake/gated/t-1.json"]
    assert factory.lake().local_root == tmp_path / LOCAL_FOR_REMOTE_LAKE


def test_aws_keys_in_the_s3_settings_are_refused(tmp_path):
    factory = FactoryResource(
        data_dir=str(tmp_path), lake_url="s3://bucket/lake", s3=S3Resource(aws_access_key_id="AKIA", aws_secret_access_key="x")
    )
    with pytest.raises(ValueError, match="give credentials through the environment"):
        factory.lake()


def test_without_urls_the_lake_and_cache_stay_under_the_data_folder(tmp_path):
    factory = FactoryResource(data_dir=str(tmp_path))
    assert factory.lake().root == tmp_path / "lake" and factory.lake().local_root == tmp_path / "lake"
    cache = factory.llm_cache()
    try:
        assert cache.path == tmp_path / "cache" / "llm_responses.sqlite"
    finally:
        cache.close()


# --- the whole factory with its lake and cache in a bucket -----------------------------------

LAKE_PREFIX = "factory/lake"
CACHE_PREFIX = "factory/cache"
SIDECAR_STAGES = ("gated", "training_set", "heldout_eval")
LIGHT_EVALUATION = {"repeats": 1, "ratio_curve": [0.0, 1.0], "attribution_groups": 0}  # storage is tested here, not scores


@dataclass
class S3Run:
    moto: MotoS3
    bucket: str
    data_dir: Path
    factory: object
    keys: list[str]
    chat_hits: int  # chat requests the fake server saw after both batches
    rerun_chat_hits: int  # ... and after batch 1 was materialized again
    rerun_succeeded: bool
    before_rerun: dict[str, str]  # lake object -> ETag, after both batches
    after_rerun: dict[str, str]


@pytest.fixture(scope="module")
def s3_run(moto_s3, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("s3_factory") / "data"
    bucket = moto_s3.new_bucket()
    with (
        running_fake_openai() as server,
        dg.DagsterInstance.ephemeral() as instance,
        pytest.MonkeyPatch.context() as patch,
    ):
        _s3_environment(patch, moto_s3.url)
        patch.setenv(LAKE_URL_VARIABLE, f"s3://{bucket}/{LAKE_PREFIX}")
        patch.setenv(CACHE_URL_VARIABLE, f"s3://{bucket}/{CACHE_PREFIX}")
        patch.setenv("FAKE_OPENAI_KEY", API_KEY)
        write_task(data_dir, evaluation=LIGHT_EVALUATION)
        write_llm_task(data_dir, server.base_url, examples_per_request=4)
        factory = build_factory(data_dir, patch, instance)
        keys = [factory.open("b1"), factory.open("b2")]
        for key in keys:
            result = factory.run(key)
            assert result.success, [event.message for event in result.all_events if event.is_failure]

        def hits() -> int:
            return server.stats()["hits"].get("POST /v1/chat/completions", 0)

        chat_hits, before = hits(), moto_s3.objects(bucket, LAKE_PREFIX)
        rerun = factory.run(keys[0])  # batch 2 exists now: batch 1 must still read only what it read the first time
        after = moto_s3.objects(bucket, LAKE_PREFIX)
        yield S3Run(moto_s3, bucket, data_dir, factory, keys, chat_hits, hits(), rerun.success, before, after)


def test_every_stage_of_both_batches_is_in_the_bucket_and_nothing_in_the_local_lake(s3_run):
    expected = {f"{LAKE_PREFIX}/{stage}/{key}.parquet" for stage in FACTORY_STAGES for key in s3_run.keys}
    expected |= {f"{LAKE_PREFIX}/{stage}/{key}.json" for stage in SIDECAR_STAGES for key in s3_run.keys}
    expected |= {f"{LAKE_PREFIX}/_batches/{key}.csv" for key in s3_run.keys}
    expected |= {f"{LAKE_PREFIX}/reports/{s3_run.keys[1]}/report.md", f"{LAKE_PREFIX}/exports/{s3_run.keys[1]}.jsonl"}
    assert expected <= set(s3_run.before_rerun)
    assert not (s3_run.data_dir / "lake").exists() and not (s3_run.data_dir / "cache").exists()


def test_the_second_version_reads_the_first_batch_across_the_bucket(s3_run):
    first, second = s3_run.keys
    lake = s3_run.factory.lake
    version = lake.read_table("training_set", second)
    accepted_first = set(lake.read_table("gated", first).query("accepted")["row_id"])
    assert accepted_first & set(version["row_id"]), "version 2 must mix in batch 1's accepted rows"
    assert set(lake.read_json("training_set", second)["batches_included"]) == {first, second}
    assert lake.read_json("heldout_eval", second)["version"]["macro_f1"] > 0


def test_rematerializing_a_batch_rewrites_identical_bytes(s3_run):
    assert s3_run.rerun_succeeded
    first = s3_run.keys[0]
    rebuilt = [f"{LAKE_PREFIX}/{stage}/{first}.parquet" for stage in (*FACTORY_STAGES, "dedup_signatures")]
    rebuilt += [f"{LAKE_PREFIX}/{stage}/{first}.json" for stage in SIDECAR_STAGES]
    assert {key: s3_run.after_rerun[key] for key in rebuilt} == {key: s3_run.before_rerun[key] for key in rebuilt}


def test_the_llm_cache_in_the_bucket_answers_a_rerun_without_a_request(s3_run):
    assert s3_run.chat_hits > 0 and s3_run.rerun_chat_hits == s3_run.chat_hits
    answers = s3_run.moto.objects(s3_run.bucket, f"{CACHE_PREFIX}/llm/")
    assert len(answers) == s3_run.chat_hits
    assert all(API_KEY.encode() not in s3_run.moto.read(s3_run.bucket, key) for key in answers)


def test_the_audit_trail_of_a_lake_in_a_bucket_stays_local_and_intact(s3_run):
    trail = audit.trail_path(s3_run.data_dir / LOCAL_FOR_REMOTE_LAKE, "home")
    assert audit.verify(trail).ok and not any(key.startswith(f"{LAKE_PREFIX}/_audit") for key in s3_run.after_rerun)
    kinds = {entry["kind"] for entry in audit.read_entries(trail)}
    assert {"llm_request", "generation", "gate_decision", "version_published"} <= kinds


def test_freshness_reads_when_each_verdict_was_written_from_the_bucket(s3_run):
    from datetime import UTC, datetime, timedelta

    from synth_assets.defs.freshness import freshness_of_tasks

    now = datetime.now(UTC)
    (home,) = freshness_of_tasks(s3_run.factory.instance, s3_run.factory.resource, now)
    assert home.last_batch in s3_run.keys and now - home.last_accepted_at < timedelta(minutes=10) and not home.stale
