"""The deployment files under deploy/ against the installed Dagster: schemas, environment, image.

Fast and offline: no database, no AWS call, no docker. The instance files pass Dagster's own
instance-config validation; their PostgreSQL storage, the ECS run launcher and the S3 compute log
manager are built from them with dummy environment values (constructing the AWS clients makes no
request); the Dockerfile is checked statically (files it copies, user, command, workspace).
test_postgres_instance.py runs the factory on deploy/postgres/dagster.yaml against a real server.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config, validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import ConfigurableClassData
from sqlalchemy.engine import make_url

from synth_assets.defs.resources import DATA_DIR_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REPO_INSTANCE = PROJECT_ROOT / "dagster.yaml"
PG_INSTANCE = PROJECT_ROOT / "deploy" / "postgres" / "dagster.yaml"
ECS_INSTANCE = PROJECT_ROOT / "deploy" / "ecs" / "dagster.yaml"
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
GUIDE = PROJECT_ROOT / "docs" / "deployment.md"
DEPLOY_INSTANCES = [PG_INSTANCE, ECS_INSTANCE]

PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "6543",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "p@ss/word",
    "DAGSTER_PG_DB": "synth_assets",
}
AWS_ENV = {
    # a region so boto3 builds its clients, and no instance-metadata lookups: nothing leaves the machine
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "DAGSTER_COMPUTE_LOG_BUCKET": "synth-assets-logs",
    "DAGSTER_PG_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synth-assets/pg-AbCdEf",
    "OPENAI_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:synth-assets/openai-AbCdEf",
}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _env_names(value) -> set[str]:
    """Every ``{env: NAME}`` in a config tree."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return {value["env"]}
        return set().union(*(_env_names(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_env_names(item) for item in value)) if value else set()
    return set()


def _set_env(monkeypatch, *envs: dict[str, str]) -> None:
    for env in envs:
        for name, value in env.items():
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize("path", [REPO_INSTANCE, *DEPLOY_INSTANCES], ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_instance_files_pass_dagsters_own_validation(path, tmp_path):
    shutil.copyfile(path, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("path", DEPLOY_INSTANCES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_deploy_instances_keep_the_repositorys_run_queue_and_pools(path):
    repo, deployed = _load(REPO_INSTANCE), _load(path)
    for section in ("run_coordinator", "concurrency"):
        assert deployed.get(section) == repo.get(section), f"{section} differs from the repository's dagster.yaml"


@pytest.mark.parametrize("path", DEPLOY_INSTANCES, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_postgres_storage_is_read_from_the_environment(path, monkeypatch):
    from dagster_postgres.utils import pg_config, pg_url_from_config

    storage = _load(path)["storage"]["postgres"]
    assert _env_names(storage) == set(PG_ENV), "every connection setting, and only those, comes from the environment"
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    missing = process_config(pg_config(), storage)
    assert not missing.success and any('"DAGSTER_PG_HOST"' in error.message for error in missing.errors)

    _set_env(monkeypatch, PG_ENV)
    resolved = process_config(pg_config(), storage)
    assert resolved.success, [error.message for error in resolved.errors]
    url = pg_url_from_config(resolved.value)
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg2", "SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://"
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "dagster", "p@ss/word", "db.internal", 6543, "synth_assets"
    )  # fmt: skip
    if path == ECS_INSTANCE:
        assert dict(parsed.query) == {"sslmode": "require"}


def test_ecs_run_launcher_config_fits_the_installed_dagster_aws(monkeypatch):
    from dagster_aws.ecs import EcsRunLauncher

    section = _load(ECS_INSTANCE)["run_launcher"]
    assert (section["module"], section["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    checked = validate_config(EcsRunLauncher.config_type(), section["config"])
    assert checked.success, [error.message for error in checked.errors]

    _set_env(monkeypatch, PG_ENV, AWS_ENV)
    launcher = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(section["config"])).rehydrate(
        as_type=EcsRunLauncher
    )
    assert launcher.secrets == [
        {"name": "DAGSTER_PG_PASSWORD", "valueFrom": AWS_ENV["DAGSTER_PG_PASSWORD_SECRET_ARN"]},
        {"name": "OPENAI_API_KEY", "valueFrom": AWS_ENV["OPENAI_API_KEY_SECRET_ARN"]},
    ]
    assert launcher.secrets_tags == ["synth-assets"]
    assert launcher.use_current_ecs_task_config and launcher.task_definition is None
    assert launcher.run_resources == {"cpu": "2048", "memory": "8192"}


def test_ecs_compute_logs_go_to_the_bucket_from_the_environment(monkeypatch):
    from dagster_aws.s3 import S3ComputeLogManager

    section = _load(ECS_INSTANCE)["compute_logs"]
    _set_env(monkeypatch, AWS_ENV)
    manager = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(section["config"])).rehydrate(
        as_type=S3ComputeLogManager
    )
    assert (manager._s3_bucket, manager._s3_prefix) == ("synth-assets-logs", "synth-assets/compute-logs")
    assert manager.upload_interval == 30


def test_ecs_run_tasks_receive_everything_the_instance_reads():
    """A run task opens the instance too: each variable it reads is passed on, plainly or as a secret."""
    config = _load(ECS_INSTANCE)
    launcher = config["run_launcher"]["config"]
    secret_names = {secret["name"] for secret in launcher["secrets"]}
    passed = set(launcher["env_vars"]) | secret_names
    needed = _env_names(config["storage"]) | _env_names(config["compute_logs"]) | {DATA_DIR_VARIABLE}
    assert needed <= passed, f"not passed to run tasks: {sorted(needed - passed)}"
    assert "DAGSTER_PG_PASSWORD" in secret_names and "DAGSTER_PG_PASSWORD" not in launcher["env_vars"]


def test_llm_api_keys_come_from_secrets_manager():
    """Every key variable a shipped task names (generation.llm.api_key_env) is an ECS secret, never plain env."""
    launcher = _load(ECS_INSTANCE)["run_launcher"]["config"]
    secret_names = {secret["name"] for secret in launcher["secrets"]}
    key_names = {"OPENAI_API_KEY"}  # the default of api_key_env
    for task_file in (PROJECT_ROOT / "data" / "tasks").glob("*/task.yaml"):
        llm = (_load(task_file).get("generation") or {}).get("llm") or {}
        key_names.add(llm.get("api_key_env", "OPENAI_API_KEY"))
    assert key_names <= secret_names, f"add to run_launcher.secrets (or tag the secret): {sorted(key_names - secret_names)}"
    assert not key_names & set(launcher["env_vars"])


def test_the_guide_names_every_variable_and_file():
    guide = GUIDE.read_text(encoding="utf-8")
    names = set().union(*(_env_names(_load(path)) for path in DEPLOY_INSTANCES))
    names |= {"DAGSTER_CODE_SERVER_HOST", "DAGSTER_CURRENT_IMAGE", DATA_DIR_VARIABLE, "OPENAI_API_KEY"}
    assert not {name for name in names if name not in guide}, "variables missing from docs/deployment.md"
    for path in (DOCKERFILE, PG_INSTANCE, ECS_INSTANCE):
        assert str(path.relative_to(PROJECT_ROOT)) in guide


# -- the Dockerfile (not built here: see docs/deployment.md) ----------------------------------


def _instructions(path: Path) -> list[tuple[str, str, str]]:
    """(INSTRUCTION, arguments, heredoc body) with continuation lines joined and comments dropped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    result, index = [], 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        keyword, _, arguments = line.strip().partition(" ")
        body = []
        heredoc = re.search(r"<<-?'?\"?(\w+)'?\"?", arguments)
        if heredoc:
            while index < len(lines) and lines[index] != heredoc.group(1):
                body.append(lines[index])
                index += 1
            index += 1
        result.append((keyword.upper(), arguments.strip(), "\n".join(body)))
    return result


def test_dockerfile_builds_from_files_that_exist():
    instructions = _instructions(DOCKERFILE)
    assert instructions[0] == ("FROM", "python:3.11-slim", "")
    args = dict(argument.split("=", 1) for keyword, argument, _ in instructions if keyword == "ARG")
    for keyword, arguments, body in instructions:
        if keyword != "COPY" or body:
            continue
        *sources, _target = [word for word in shlex.split(arguments) if not word.startswith("--")]
        for source in sources:
            source = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], source)
            assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    # both instance files can be baked in through the build argument
    assert args["INSTANCE_CONFIG"] in {str(path.relative_to(PROJECT_ROOT)) for path in DEPLOY_INSTANCES}


def test_dockerfile_installs_the_postgres_extra_pinned_with_dagster():
    import tomllib

    import dagster
    import dagster_postgres

    runs = " ".join(arguments for keyword, arguments, _ in _instructions(DOCKERFILE) if keyword == "RUN")
    assert 'pip install ".[postgres]"' in runs and "pip install --no-deps -e ." in runs
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {spec.split("==")[0]: spec.split("==")[1] for spec in project["dependencies"] if "==" in spec}
    assert pins["dagster"] == dagster.__version__
    assert project["optional-dependencies"]["postgres"] == [f"dagster-postgres=={pins['dagster-aws']}"]
    assert dagster_postgres.__version__ == pins["dagster-aws"], "installed dagster-postgres does not match the pin"


def test_dockerfile_runs_the_code_location_as_an_unprivileged_user():
    instructions = _instructions(DOCKERFILE)
    keywords = [keyword for keyword, _, _ in instructions]
    users = [arguments for keyword, arguments, _ in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert keywords.index("USER") > max(index for index, keyword in enumerate(keywords) if keyword == "RUN")
    env = " ".join(arguments for keyword, arguments, _ in instructions if keyword == "ENV")
    assert f"{DATA_DIR_VARIABLE}=/data" in env and "DAGSTER_HOME=/opt/dagster/home" in env
    assert not re.search(r"(PASSWORD|SECRET|API_KEY|TOKEN)\w*=", env), "no secret may be set in the image"
    [command] = [yaml.safe_load(arguments) for keyword, arguments, _ in instructions if keyword == "CMD"]
    assert command[:3] == ["dagster", "code-server", "start"]
    module = command[command.index("-m") + 1]
    assert module == "synth_assets.definitions" and importlib.util.find_spec(module) is not None


def test_dockerfile_workspace_points_at_the_code_server(monkeypatch):
    from dagster._core.workspace.config_schema import process_workspace_config

    [body] = [body for keyword, arguments, body in _instructions(DOCKERFILE) if keyword == "COPY" and body]
    workspace = yaml.safe_load(body)
    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "code-server.synth-assets.local")
    result = process_workspace_config(workspace)
    assert result.success, [error.message for error in result.errors]
    [location] = result.value["load_from"]
    assert location["grpc_server"]["host"] == "code-server.synth-assets.local"
    command = next(yaml.safe_load(arguments) for keyword, arguments, _ in _instructions(DOCKERFILE) if keyword == "CMD")
    assert str(location["grpc_server"]["port"]) == command[command.index("-p") + 1]
    assert location["grpc_server"]["location_name"] == command[command.index("--location-name") + 1]
