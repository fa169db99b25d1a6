"""Run configuration: one frozen dataclass, parsed once at the edge. Precedence: CLI > file > defaults."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


def default_cache_dir() -> Path:
    base = os.environ.get("MGBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mgbench"
    )
    return Path(base)


DEFAULT_ROLES = {
    "minigpt4": "minigpt4-tiny", "blip2": "blip2-tiny", "stage1": "minigpt4-tiny-stage1",
    "no_qformer": "minigpt4-tiny-noqformer", "three_layers": "minigpt4-tiny-3layers",
    "finetune_qformer": "minigpt4-tiny-ftqformer", "locna": "minigpt4-tiny-locna", "blip2_ft": "blip2-tiny-ft",
    "finetune_vicuna": "minigpt4-tiny-ftvicuna",
}


@dataclass(frozen=True)
class RunConfig:
    models: tuple[str, ...] = ("dummy",)
    tasks: tuple[str, ...] = ("smoke_colours",)
    store: str = "mgbench.sqlite"
    batch_size: int = 8
    limit: int | None = None
    seed: int = 0
    data_root: str | None = None
    cache_dir: str | None = None
    retry_errors: bool = False
    progress: bool = True
    # Per-model constructor options, e.g. {"dummy": {"seed": 3}}.
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The judge of judged tasks (coverage, and the proxies of the human-rated tables): "rule" (offline, for
    # the synthetic world), "openai" (judge_options: model, base_url, ...) or "replay" (judge_options: path).
    judge: str = "rule"
    judge_options: dict[str, Any] = field(default_factory=dict)
    judge_max_requests: int | None = None
    judge_max_tokens: int | None = None
    # Which model plays which row of the paper (the benchmark suite's claims are about roles); default: the
    # tiny zoo built by `mgbench zoo build`. A real zoo's config file maps the roles to its own names.
    roles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["models"] = list(self.models)
        data["tasks"] = list(self.tasks)
        return data

    def config_hash(self) -> str:
        """Hash of what can change results (not where they are stored, nor how progress is shown)."""
        from harness.provenance import redact_options  # a secret never changes results, nor the hash

        data = redact_options(self.to_dict())
        for ignored in ("store", "progress", "cache_dir", "retry_errors", "batch_size"):
            data.pop(ignored)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict of RunConfig fields; unknown keys are errors."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    for key in ("models", "tasks"):
        if key in data:
            value = data[key]
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: field {key!r} must be a list of names or 'a,b'")
            data[key] = tuple(value)
    if "model_options" in data and not (
        isinstance(data["model_options"], dict) and all(isinstance(v, dict) for v in data["model_options"].values())
    ):
        raise ConfigError(f"{path}: field 'model_options' must map model names to option mappings")
    if "store" in data:  # a relative store path in a file is relative to that file
        data["store"] = str((path.parent / data["store"]).resolve())
    return data


def build_config(file: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Defaults, then the file's values, then every override that is not None."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(load_config_file(file))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "model_options" in overrides:  # merged per model: a CLI option overrides only its own key
        merged = {m: dict(o) for m, o in values.get("model_options", {}).items()}
        for model, options in overrides.pop("model_options").items():
            merged.setdefault(model, {}).update(options)
        values["model_options"] = merged
    values.update(overrides)
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}")
    try:
        return RunConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
