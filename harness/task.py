"""Task specs (one YAML file each) and the interface every task implements."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from harness.types import GenerationSettings, Request, Response

if TYPE_CHECKING:  # statsmodels is slow to import; listing commands never need it
    from harness.metrics import MetricValue

SPEC_DIR = Path(__file__).resolve().parent.parent / "tasks" / "specs"
MODES = ("generate", "score_choices")


class SpecError(ValueError):
    """A task spec that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str
    description: str
    prompt: str
    mode: str = "generate"
    metric: str = "accuracy"
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    dataset: dict[str, Any] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)  # e.g. {"prompt": "coverage"}: the task needs a judge
    paper: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TaskSpec:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"{path}: cannot read task spec: {exc}") from exc
        if not isinstance(data, dict):
            raise SpecError(f"{path}: a task spec must be a mapping, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> TaskSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{source}: unknown field(s) {unknown}; allowed: {sorted(known)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise SpecError(f"{source}: missing required field(s) {missing}")
        values = dict(data)
        values["version"] = str(values["version"])
        if values.get("mode", "generate") not in MODES:
            raise SpecError(f"{source}: field 'mode' must be one of {MODES}, got {values['mode']!r}")
        gen = values.get("generation", {}) or {}
        gen_fields = {f.name for f in dataclasses.fields(GenerationSettings)}
        bad = sorted(set(gen) - gen_fields)
        if bad:
            raise SpecError(f"{source}: unknown field(s) generation.{bad}; allowed: {sorted(gen_fields)}")
        try:
            if "stop" in gen:
                gen = {**gen, "stop": tuple(gen["stop"])}
            values["generation"] = GenerationSettings(**gen)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{source}: field 'generation': {exc}") from exc
        return cls(**values)


@dataclass
class ScoreContext:
    """What scoring may use besides the pairs: their store keys, and a judge for judged tasks.

    `judge(prompts, keys)` returns one verdict per prompt (harness.judges.Verdict), answering from the
    store's cache where it can; `judge_label` names the judge wherever its verdicts are shown.
    """

    keys: list[str]
    model: str = ""
    store: Any = None  # the results store (human ratings live there too)
    judge: Callable[[Sequence[str], Sequence[str | None]], list[Any]] | None = None
    judge_name: str = ""
    judge_label: str = ""
    is_proxy: bool = False


@dataclass(frozen=True)
class TaskContext:
    """What a task may use to find its data: an explicit data root (real data) and a cache folder."""

    cache_dir: Path
    data_root: Path | None = None


class Task(ABC):
    """A task turns its dataset into requests and scores (request, response) pairs.

    Subclasses set `spec_name` (the YAML file in tasks/specs/) and implement `requests` and `score`.
    """

    spec_name: ClassVar[str]

    def __init__(self, spec: TaskSpec | None = None):
        self.spec = spec or TaskSpec.from_yaml(SPEC_DIR / f"{self.spec_name}.yaml")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return self.spec.mode

    @abstractmethod
    def requests(self, ctx: TaskContext) -> list[Request]:
        """Every request of the task, in a deterministic order (the runner draws subsets itself)."""

    @abstractmethod
    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        """Metrics over the successful (error-free) pairs; the runner counts errors itself."""
