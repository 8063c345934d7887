"""``task.yaml``: one labelled-text task, validated into a typed object at load time.

Every error names the file and the key (``gate.min_chars``) and says what would be valid, so a
user fixes a typo in one try instead of reading a traceback.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synth_assets.core.probes import PROBES
from synth_assets.core.template_generator import OPERATORS

TASK_FILE = "task.yaml"
TASK_NAME_PATTERN = re.compile(r"^[a-z0-9_]{1,40}$")
MAX_LABEL_CHARS = 80


def label_problem(label: str) -> str:
    """Why ``label`` cannot name a class, or ``""`` when it can.

    Real datasets name classes every way ("alarm_set", "Sci/Tech", "not spam", "négatif", "0"), and
    every one of those is kept as it is. What is refused would break a CSV row, a prompt or a report.
    """
    if not label.strip():
        return "is empty"
    if label != label.strip():
        return "starts or ends with a space"
    if len(label) > MAX_LABEL_CHARS:
        return f"has {len(label)} characters (at most {MAX_LABEL_CHARS})"
    if any(unicodedata.category(ch).startswith("C") for ch in label):
        return "holds a line break, tab or other control character"
    return ""


class TaskConfigError(ValueError):
    """A task folder or its ``task.yaml`` is not usable; the message says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LlmConfig(_Strict):
    """How the ``openai`` backend talks to an OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""

    model: str = Field(min_length=1)
    base_url: str = Field("https://api.openai.com/v1", pattern=r"^https?://")
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="variable holding the key")
    examples_per_request: int = Field(5, ge=1, le=50)
    seed_examples_per_request: int = Field(3, ge=0, le=20, description="real seeds shown per request, rotated")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=16, le=32_768, description="completion tokens per request")
    structured_output: Literal["json_schema", "json_object", "prompt"] = "json_schema"
    concurrency: int = Field(16, ge=1, le=1024)
    requests_per_minute: int = Field(500, ge=1)
    tokens_per_minute: int = Field(200_000, ge=1)
    max_retries: int = Field(6, ge=0, le=20)
    timeout_seconds: float = Field(60.0, gt=0)
    circuit_breaker_failures: int = Field(8, ge=1, description="consecutive failed requests that stop the batch")
    refine_max_share: float = Field(
        0.2, ge=0.0, le=1.0, description="share of requests that may get one follow-up fixing rejected examples; 0 = off"
    )
    batch_resubmissions: int = Field(2, ge=0, le=10, description="Batch API: resubmit unanswered requests at most this often")
    budget_usd_per_batch: float = Field(5.0, ge=0)
    budget_usd_per_task: float = Field(50.0, ge=0)
    price_per_million_tokens: dict[Literal["input", "output"], float] | None = Field(
        None, description="overrides the repo's price table (e.g. 0 for a local server)"
    )


class GenerationConfig(_Strict):
    backend: Literal["template", "openai", "openai-batch"] = "template"
    per_label: int = Field(50, ge=1, le=10_000, description="attempts per label per batch")
    quotas: Literal["uniform", "validation_f1"] = Field(
        "validation_f1", description="split a batch's attempts evenly, or towards labels the last version is weak on"
    )
    operators: dict[str, float] | None = Field(None, description="template backend: how often each operator is tried")
    llm: LlmConfig | None = None

    @model_validator(mode="after")
    def _llm_settings_match_backend(self) -> GenerationConfig:
        if self.backend != "template" and self.llm is None:
            raise ValueError(f"backend {self.backend} needs an llm section with at least a model (see docs/generation.md)")
        if self.operators is not None:
            unknown = sorted(set(self.operators) - set(OPERATORS))
            if unknown or any(weight < 0 for weight in self.operators.values()) or not any(self.operators.values()):
                raise ValueError(
                    f"operators must give non-negative weights, at least one above 0, to known operators "
                    f"({', '.join(OPERATORS)}); unknown: {', '.join(unknown) or 'none'}"
                )
        if self.backend == "template" and self.llm is not None:
            raise ValueError("the llm section is only read by the openai backends; remove it or set backend: openai")
        return self


class DedupConfig(_Strict):
    near_dup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard of character shingles")
    shingle_chars: int = Field(5, ge=2, le=12)
    num_perm: int = Field(128, ge=16, le=1024)
    semantic_threshold: float | None = Field(
        None, gt=0.0, le=1.0, description="cosine at which a same-label paraphrase is a duplicate; null = off"
    )

    def minhash_settings(self) -> dict:
        """The keyword arguments of the near-duplicate engine (``find_duplicates``, ``dedup_batch``)."""
        return {"threshold": self.near_dup_threshold, "num_perm": self.num_perm, "shingle_chars": self.shingle_chars}

    synthetic_in_seeds: Literal["flag", "reject"] = Field(
        "flag", description="incoming real seed rows that copy earlier synthetic rows: flag them, or refuse the file"
    )


class GateConfig(_Strict):
    min_chars: int = Field(3, ge=1)
    max_chars: int = Field(500, ge=1)
    yield_floor: float = Field(0.3, ge=0.0, le=1.0, description="accepted / attempted below this fails the batch")
    min_label_coverage: float = Field(
        0.9, ge=0.0, le=1.0, description="share of attempted labels with an accepted row, after the top-up rounds"
    )
    top_up_rounds: int = Field(
        2, ge=0, le=10, description="rounds of extra attempts for labels left without an accepted row; 0 = off"
    )
    top_up_attempts_per_label: int = Field(20, ge=1, le=10_000, description="attempts per such label in each top-up round")
    max_near_dup_rate: float = Field(0.5, ge=0.0, le=1.0, description="near duplicates / attempted above this fails the batch")
    skip_probes: list[str] = Field(default_factory=list, description="probes of core/probes.py this task does not run")
    max_seed_hit_share: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="an artefact filter (template marker, probes but pii) that rejects more of the real seeds is not applied",
    )
    review_share: float = Field(0.02, ge=0.0, le=1.0, description="share of accepted rows exported for human review")
    review_min_rows: int = Field(20, ge=0)
    review_max_rows: int = Field(500, ge=0)
    review_min_acceptance: float = Field(0.8, ge=0.0, le=1.0, description="reviewed acceptance below this fails the batch")
    label_check: bool = Field(True, description="dispute rows whose label a classifier on the seeds confidently rejects")
    llm_judge: bool = Field(False, description="the task's LLM judges the rows the classifier is unsure about")
    too_easy: bool = Field(True, description="drop artificial-looking rows, when that raises validation macro-F1")
    too_easy_threshold: float = Field(0.9, gt=0.5, le=1.0, description="discriminator probability of 'synthetic'")
    label_dispute_rank: int = Field(3, ge=1, description="disputed only if the claimed label ranks below this")
    label_dispute_ratio: float = Field(5.0, ge=1.0, description="... and the top label is this many times as probable")

    @field_validator("skip_probes")
    @classmethod
    def _probes_exist(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(PROBES))
        if unknown:
            raise ValueError(f"unknown probe(s) {', '.join(unknown)}; known: {', '.join(PROBES)}")
        return names

    @model_validator(mode="after")
    def _bounds_ordered(self) -> GateConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) is larger than max_chars ({self.max_chars})")
        return self


class MixConfig(_Strict):
    synthetic_share: float | Literal["auto", "unweighted"] = Field(
        "auto",
        description=(
            "synthetic rows' share of the training weight (real rows are weighted to reach it; no accepted row is dropped), "
            "unweighted (every row counts once), or auto: chosen on validation folds of the seeds (docs/evaluation.md)"
        ),
    )
    candidate_shares: list[float] = Field(
        default_factory=lambda: [0.5, 0.75, 0.9],
        min_length=1,
        description="shares auto chooses from, beside seeds only and unweighted",
    )
    do_no_harm: bool = Field(
        True, description="publish the seeds alone when validation shows no evidence that the synthetic rows help"
    )
    balance: Literal["real_prior", "balanced"] = Field(
        "real_prior", description="weight synthetic rows by the real label prior, or fill labels towards equal totals"
    )
    label_weights: dict[str, float] = Field(
        default_factory=dict, description="multiply a label's part of the synthetic weight (a row still weighs at most 1)"
    )
    max_synthetic_per_label: int | None = Field(None, ge=0, description="cap on any label's synthetic rows")
    validation_folds: int = Field(3, ge=2, le=10, description="folds of the real seeds the validation scores come from")

    @field_validator("synthetic_share", mode="before")
    @classmethod
    def _share_below_one(cls, share: object) -> object:
        if share in ("auto", "unweighted"):
            return share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
            raise ValueError(
                f"must be auto, unweighted or a number in [0, 1) (a version always keeps its real rows); got {share!r}"
            )
        return float(share)

    @field_validator("candidate_shares")
    @classmethod
    def _candidates_below_one(cls, shares: list[float]) -> list[float]:
        if any(not 0.0 < share < 1.0 for share in shares):
            raise ValueError(f"candidate_shares must each be in (0, 1) (seeds only is always a candidate); got {shares}")
        return sorted(set(shares))

    @field_validator("label_weights")
    @classmethod
    def _weights_positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()):
            raise ValueError(f"label_weights must be >= 0; got {weights}")
        return weights


class EvaluationConfig(_Strict):
    model: Literal["embedding_logreg", "tfidf_logreg"] = Field(
        "embedding_logreg",
        description="the model every choice and verdict is made with: sentence embeddings or TF-IDF, + logistic regression",
    )
    compare_models: list[Literal["embedding_logreg", "tfidf_logreg"]] = Field(
        default_factory=lambda: ["tfidf_logreg"],
        description="models also reported beside it (version, seeds only, all real), for comparison with published baselines",
    )
    repeats: int = Field(3, ge=1, le=20, description="draws of the synthetic rows a version's score is averaged over")
    ratio_curve: list[float] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 1.0], description="synthetic shares of the held-out ratio curve"
    )
    attribution_groups: int = Field(5, ge=0, le=50, description="largest groups per kind left out one at a time; 0 = off")

    @field_validator("ratio_curve")
    @classmethod
    def _shares_in_range(cls, shares: list[float]) -> list[float]:
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError(f"ratio_curve shares must each be in [0, 1]; got {shares}")
        return sorted(set(shares))


class OperationsConfig(_Strict):
    """How the task runs unattended (see docs/operations.md)."""

    refresh_cron: str = Field(
        "0 6 * * 1", pattern=r"^\S+( \S+){4}$", description="when the task's refresh schedule adds a batch (5-field cron, UTC)"
    )
    refresh_schedule: Literal["running", "stopped"] = Field(
        "stopped", description="whether refresh_<task> starts running (stopped: on an LLM backend every refresh costs money)"
    )
    freshness_hours: float = Field(192.0, gt=0, description="no newly accepted batch for this long flags the task as stale")


class FinetuneConfig(_Strict):
    """Where the optional ``finetune_job`` asset hands a dataset version over for fine-tuning (docs/finetuning.md)."""

    model: str = Field(min_length=1, description="the base model to fine-tune")
    base_url: str = Field("https://api.openai.com/v1", pattern=r"^https?://")
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="variable holding the key")
    suffix: str | None = Field(None, min_length=1, max_length=64, description="added to the fine-tuned model's name")
    n_epochs: int | None = Field(None, ge=1, le=50, description="null = the API chooses")
    seed: int | None = Field(None, description="null = the API chooses")


class TaskConfig(_Strict):
    name: str
    text_kind: str = Field(min_length=1)
    labels: dict[str, str] = Field(min_length=2)
    seeds: str = "seeds.csv"
    heldout: str = "heldout.csv"
    real_pool: str | None = None
    license: str | None = None
    generation: GenerationConfig = GenerationConfig()
    dedup: DedupConfig = DedupConfig()
    gate: GateConfig = GateConfig()
    mix: MixConfig = MixConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    operations: OperationsConfig = OperationsConfig()
    finetune: FinetuneConfig | None = None
    task_dir: Path = Field(exclude=True)

    @field_validator("name")
    @classmethod
    def _name_is_a_key(cls, name: str) -> str:
        if not TASK_NAME_PATTERN.match(name):
            raise ValueError(f"{name!r} must be 1-40 characters of a-z, 0-9 and _ (it prefixes batch keys)")
        return name

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_are_named(cls, labels: object) -> object:
        if not isinstance(labels, dict):
            return labels  # the type error names it
        named = {}
        for label, description in labels.items():
            if isinstance(label, bool):  # YAML 1.1 reads yes/no/on/off/true/false keys as booleans
                raise ValueError(f"label {label!r} was read by YAML as a boolean; quote the label in task.yaml ('yes': ...)")
            if isinstance(label, int):  # ``0: negative`` is the label "0", as the seed files spell it
                label = str(label)
            if isinstance(label, str) and (problem := label_problem(label)):
                raise ValueError(f"label {label!r} {problem}")
            if description is None or not str(description).strip():
                raise ValueError(f"label {label!r} needs a one-line description")
            named[label] = description if isinstance(description, str) else str(description)
        return named

    @model_validator(mode="after")
    def _judge_has_a_model(self) -> TaskConfig:
        if self.gate.llm_judge and self.generation.llm is None:
            raise ValueError("gate.llm_judge needs generation.llm (the model and endpoint that judge)")
        return self

    @model_validator(mode="after")
    def _weighted_labels_exist(self) -> TaskConfig:
        unknown = sorted(set(self.mix.label_weights) - set(self.labels))
        if unknown:
            raise ValueError(f"mix.label_weights names label(s) the task does not have: {', '.join(unknown)}")
        return self

    def path(self, name: str) -> Path:
        return self.task_dir / name

    @property
    def seeds_path(self) -> Path:
        return self.path(self.seeds)

    @property
    def heldout_path(self) -> Path:
        return self.path(self.heldout)

    @property
    def real_pool_path(self) -> Path | None:
        return self.path(self.real_pool) if self.real_pool else None

    def settings_fingerprint(self) -> dict:
        """Everything about the task that changes what the factory produces (not where files are)."""
        return self.model_dump(mode="json")


def _format_validation_error(source: Path, error: ValidationError) -> str:
    lines = [f"{source} is not a valid task file:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown key; remove it or fix its spelling")
        else:
            lines.append(f"  - {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_task(task_dir: Path) -> TaskConfig:
    """Read and validate ``<task_dir>/task.yaml``; check that the data files it names exist."""
    source = Path(task_dir) / TASK_FILE
    if not source.is_file():
        raise TaskConfigError(f"{source} does not exist: every task folder needs a task.yaml (see docs/tasks.md)")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaskConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaskConfigError(f"{source} must be a mapping of keys (name, labels, ...), got {type(raw).__name__}")
    try:
        task = TaskConfig(**raw, task_dir=Path(task_dir))
    except ValidationError as exc:
        raise TaskConfigError(_format_validation_error(source, exc)) from None
    if task.name != Path(task_dir).name:
        raise TaskConfigError(f"{source}: name is {task.name!r} but the folder is {Path(task_dir).name!r}; make them equal")
    for key in ("seeds", "heldout", "real_pool"):
        path = getattr(task, f"{key}_path")
        if path is not None and not path.is_file():
            raise TaskConfigError(f"{source}: {key} names {path}, which does not exist")
    return task


def load_tasks(tasks_root: Path) -> dict[str, TaskConfig]:
    """Every task folder under ``tasks_root`` (folders without task.yaml are ignored)."""
    root = Path(tasks_root)
    if not root.is_dir():
        return {}
    return {path.parent.name: load_task(path.parent) for path in sorted(root.glob(f"*/{TASK_FILE}"))}


def loadable_tasks(tasks_root: Path) -> dict[str, TaskConfig]:
    """The tasks under ``tasks_root`` whose task.yaml loads; the others are left out (their error surfaces when they run).

    For what is built when the definitions load (every stage's code version, the schedules): each
    task.yaml is parsed once per content, not once per stage.
    """
    tasks = {}
    for path in sorted(Path(tasks_root).glob(f"*/{TASK_FILE}")):
        task = _load_unless_broken(path.parent, path.read_bytes())
        if task is not None:
            tasks[path.parent.name] = task
    return tasks


@lru_cache(maxsize=1024)
def _load_unless_broken(task_dir: Path, _content: bytes) -> TaskConfig | None:
    try:
        return load_task(task_dir)
    except TaskConfigError:
        return None
