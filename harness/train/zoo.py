"""The tiny zoo (`mgbench zoo build`): every model of the paper, in miniature, trained on the synthetic world.

    tokenizer, tiny ViT (dense category and colour labels of fresh scenes) -> tiny BLIP-2 (its ViT frozen, captions)
      -> tiny Vicuna (text corpus)
      -> MiniGPT-4 = BLIP-2's ViT + Q-Former + queries (frozen) + Vicuna (frozen) + a fresh `llama_proj`
      -> stage 1 (stage1/pairs.jsonl)                                       "minigpt4-tiny-stage1"
      -> curation (the stage-1 model describes cc_sbu_align images; fix-up, rule filters, scripted verifier)
      -> stage 2 (the curated pairs; `stage2_data="cc_sbu_align"`: the world's) "minigpt4-tiny"
      -> variants, each trained as the paper trains it:
         no Q-Former (stage 1 + 2), + 3 layers (stage 1 + 2), + finetune Q-Former (Q-Former trained in the
         stages `ZooConfig.ftqformer_stages`), LocNa (stage 2 on locna/narratives.jsonl),
         Finetune Vicuna (stage 2 with LoRA, cc_sbu_align + A-OKVQA/GQA train questions), BLIP-2 FT.

Every artefact is a folder `artefacts/<phase>-<key>` whose key hashes the phase's code version, its config
and the keys of what it is built from (the world enters through the digest of its world.json, which names
generator version, seed, size and record counts). A finished folder holds `artefact.json` (written last);
a rebuild skips it, and a changed config rebuilds exactly the phases downstream of the change. A phase is
built in `<folder>.partial` (the MiniGPT-4 trainer resumes from its checkpoints there) and renamed when done.
`zoo.json` lists the models and their folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.provenance import environment, git_sha
from harness.train.pretrain import Schedule, VicunaConfig
from harness.train.pretrain_blip2 import Blip2PretrainConfig
from harness.train.pretrain_vision import VisionPretrainConfig

CODE_VERSIONS = {"tokenizer": "1", "vision": "1", "blip2": "2", "vicuna": "3", "minigpt4": "3", "blip2_ft": "1",
                 "curate": "3"}
VERIFIERS = ("world", "world-no-edit", "none")
ZOO_FILE = "zoo.json"
DONE_FILE = "artefact.json"
MODEL_DIR = "model"


@dataclass(frozen=True)
class StageSpec:
    steps: int
    batch_size: int
    lr: float
    min_lr: float
    warmup: int
    max_txt_len: int
    crop_min_scale: float = 0.5  # stage 1's random resized crop (the paper's 0.5-1 of the area); 1.0: no crop


@dataclass(frozen=True)
class CurationSpec:
    """Stage-2 data curation with the stage-1 model (paper Sec. 3.2) on the first `images` cc_sbu_align images."""

    images: int = 1000
    min_tokens: int = 80  # "Continue" when the first answer is shorter
    max_new_tokens: int = 160
    batch_size: int = 32
    min_words: int = 10
    judge: str = "rule"  # the fix-up post-editor: the offline rule judge on the synthetic world
    # the manual verification: "world" = a scripted rater standing in for people, reading the world's release
    # caption of the image: it removes the sentences that do not match the image (`zoo_phases.refine`), then
    # rejects a description that names no object; "world-no-edit" = the same rater accepting or rejecting whole
    # descriptions (it rejects one that names an object the image lacks, or none); "none" = accept whatever
    # passed the rule filters
    verifier: str = "world"

    def __post_init__(self) -> None:
        if self.verifier not in VERIFIERS:
            raise ValueError(f"curation.verifier: expected one of {VERIFIERS}, got {self.verifier!r}")


@dataclass(frozen=True)
class ZooConfig:
    vocab_size: int = 1200
    vision: VisionPretrainConfig = VisionPretrainConfig()
    blip2: Blip2PretrainConfig = Blip2PretrainConfig()
    vicuna: VicunaConfig = VicunaConfig()
    # No crop in the miniature: a 64-pixel scene's caption names every object, and a crop of half the area cuts
    # out objects the caption still names (measured on 60 val images: the stage-1 model's object recall in its
    # own format 0.29 with the paper's crop, 0.33 with 0.8-1, 0.34 without; under the chat template 0.28 -> 0.38).
    stage1: StageSpec = StageSpec(steps=300, batch_size=32, lr=1e-2, min_lr=1e-3, warmup=20, max_txt_len=32,
                                  crop_min_scale=1.0)
    stage2: StageSpec = StageSpec(steps=150, batch_size=12, lr=1e-3, min_lr=1e-4, warmup=10, max_txt_len=160)
    # "curated": what the zoo's curation phase accepted (the paper's way); "cc_sbu_align": the world's release
    stage2_data: str = "curated"
    curation: CurationSpec = CurationSpec()
    ftqformer_stages: tuple[int, ...] = (2,)
    lora: dict[str, Any] = field(default_factory=lambda: {"r": 8, "lora_alpha": 16,
                                                          "target_modules": ["q_proj", "v_proj"]})
    vqa_share: float = 0.5  # Finetune Vicuna: share of VQA questions in its stage-2 data
    blip2_ft: Schedule = Schedule(steps=150, batch_size=12, lr=3e-4, min_lr=3e-5, warmup=10)
    variants: tuple[str, ...] = ("noqformer", "3layers", "ftqformer", "locna", "ftvicuna", "blip2-ft")
    seed: int = 0


# model name -> the phase whose folder holds it
MODELS = {"minigpt4-tiny": "stage2", "minigpt4-tiny-stage1": "stage1", "minigpt4-tiny-noqformer": "noqformer-stage2",
          "minigpt4-tiny-3layers": "3layers-stage2", "minigpt4-tiny-ftqformer": "ftqformer-stage2",
          "minigpt4-tiny-locna": "locna", "minigpt4-tiny-ftvicuna": "ftvicuna", "blip2-tiny": "blip2",
          "blip2-tiny-ft": "blip2-ft"}


@dataclass(frozen=True)
class Phase:
    name: str
    kind: str  # a CODE_VERSIONS key
    deps: tuple[str, ...]
    config: dict[str, Any]


FROZEN_LM_FIELDS = ("freeze_lm", "lm_steps", "lm_lr")


def blip2_key_config(blip2: Blip2PretrainConfig) -> dict[str, Any]:
    """BLIP-2's config as its phase key reads it: the frozen-LLM fields only when `freeze_lm` is on, `place_share`
    and `cross_attention_init` only when above 0, so that zoos built before those knobs existed keep their keys
    (and their cached artefacts)."""
    config = dataclasses.asdict(blip2)
    if not blip2.freeze_lm:
        for name in FROZEN_LM_FIELDS:
            del config[name]
    for name in ("place_share", "cross_attention_init"):
        if not config[name]:
            del config[name]
    return config


def vision_key_config(vision: VisionPretrainConfig) -> dict[str, Any]:
    """The ViT's config as its phase key reads it: `position_weight` only when on (zoos built before the knob keep
    their keys)."""
    config = dataclasses.asdict(vision)
    if not vision.position_weight:
        del config["position_weight"]
    return config


def phases(cfg: ZooConfig) -> list[Phase]:
    """The build graph, in build order."""
    asdict = dataclasses.asdict
    s1, s2 = asdict(cfg.stage1), asdict(cfg.stage2)
    world = {"seed": cfg.seed}
    out = [Phase("tokenizer", "tokenizer", (), {"vocab_size": cfg.vocab_size}),
           Phase("vision", "vision", (), {**vision_key_config(cfg.vision), **world}),
           Phase("blip2", "blip2", ("tokenizer", "vision"), {**blip2_key_config(cfg.blip2), **world}),
           Phase("vicuna", "vicuna", ("tokenizer",), {**asdict(cfg.vicuna), **world})]

    def mg(name: str, deps: tuple[str, ...], stage: int, spec: dict, data: str, **arch: Any) -> Phase:
        return Phase(name, "minigpt4", deps, {"stage": stage, "train": spec, "data": data, "seed": cfg.seed, **arch})

    stage2_data = cfg.stage2_data
    # every stage-2 run trains on the same described pairs; curated ones come from MiniGPT-4's own stage 1
    curated = ("curate",) if stage2_data == "curated" else ()
    out.append(mg("stage1", ("blip2", "vicuna"), 1, s1, "pairs"))
    if curated:
        out.append(Phase("curate", "curate", ("stage1",), {**asdict(cfg.curation), "seed": cfg.seed}))
    out.append(mg("stage2", ("stage1", *curated), 2, s2, stage2_data))
    v = set(cfg.variants)
    if "noqformer" in v:
        out += [mg("noqformer-stage1", ("blip2", "vicuna"), 1, s1, "pairs", qformer=False),
                mg("noqformer-stage2", ("noqformer-stage1", *curated), 2, s2, stage2_data, qformer=False)]
    if "3layers" in v:
        out += [mg("3layers-stage1", ("blip2", "vicuna"), 1, s1, "pairs", projection_layers=3),
                mg("3layers-stage2", ("3layers-stage1", *curated), 2, s2, stage2_data, projection_layers=3)]
    if "ftqformer" in v:
        first = "stage1"
        if 1 in cfg.ftqformer_stages:
            out.append(mg("ftqformer-stage1", ("blip2", "vicuna"), 1, s1, "pairs", train_qformer=True))
            first = "ftqformer-stage1"
        out.append(mg("ftqformer-stage2", (first, *curated), 2, s2, stage2_data,
                      train_qformer=2 in cfg.ftqformer_stages))
    if "locna" in v:
        out.append(mg("locna", ("stage1",), 2, s2, "locna"))
    if "ftvicuna" in v:
        out.append(mg("ftvicuna", ("stage1", *curated), 2, s2, "vqa_mix", lora=cfg.lora, train_lora=True,
                      vqa_share=cfg.vqa_share, described=stage2_data))
    if "blip2-ft" in v:
        settings = {**asdict(cfg.blip2_ft), "seed": cfg.seed, "data": stage2_data,
                    "max_txt_len": cfg.stage2.max_txt_len}
        out.append(Phase("blip2-ft", "blip2_ft", ("blip2", *curated), settings))
    return out


def zoo_config_from_dict(data: dict[str, Any], where: str = "zoo config") -> ZooConfig:
    """A ZooConfig from a (YAML) mapping that names only what it changes, nested as the dataclasses are:
    `{"stage1": {"steps": 100}, "blip2": {"schedule": {"steps": 50}}, "variants": ["noqformer"]}`.
    An unknown field is an error naming its dotted path."""

    def build(cls: type, base: Any, values: Any, path: str) -> Any:
        if not isinstance(values, dict):
            raise ValueError(f"{where}: {path or 'the top level'} must be a mapping, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {[f'{path}{u}' for u in unknown]}; "
                             f"allowed at {path or 'the top level'}: {sorted(fields)}")
        changes = {}
        for name, value in values.items():
            current = getattr(base, name)
            if dataclasses.is_dataclass(current):
                changes[name] = build(type(current), current, value, f"{path}{name}.")
            elif isinstance(current, tuple):
                changes[name] = tuple(value)
            else:
                changes[name] = value
        return dataclasses.replace(base, **changes)

    return build(ZooConfig, ZooConfig(), data or {}, "")


def load_zoo_config(path: str | Path) -> ZooConfig:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read zoo config: {exc}") from exc
    return zoo_config_from_dict(data or {}, str(path))


def world_digest(world: Path) -> str:
    return hashlib.sha256((Path(world) / "world.json").read_bytes()).hexdigest()


def phase_key(phase: Phase, dep_keys: list[str], world: str) -> str:
    payload = {"phase": phase.name, "kind": phase.kind, "version": CODE_VERSIONS[phase.kind], "config": phase.config,
               "deps": dep_keys, "world": world}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_zoo(world_dir: str | Path, out_dir: str | Path, seed: int = 0, progress: bool = True,
              config: ZooConfig | None = None) -> dict[str, Path]:
    """Build (or reuse) every artefact; returns {model name: folder} and writes `out_dir/zoo.json`."""
    from harness.train import zoo_phases

    world, out = Path(world_dir), Path(out_dir)
    cfg = dataclasses.replace(config or ZooConfig(), seed=seed)
    digest = world_digest(world)
    keys: dict[str, str] = {}
    paths: dict[str, Path] = {}
    record: dict[str, Any] = {}
    started = time.perf_counter()
    for phase in phases(cfg):
        keys[phase.name] = phase_key(phase, [keys[d] for d in phase.deps], digest)
        folder = out / "artefacts" / f"{phase.name}-{keys[phase.name]}"
        deps = {d: paths[d] for d in phase.deps}
        t0 = time.perf_counter()
        if (folder / DONE_FILE).exists():
            status = "cached"
        else:
            _say(progress, f"[zoo] {phase.name}: building ({folder.name})")
            build: Callable[..., dict] = zoo_phases.BUILDERS[phase.kind]
            partial = folder.with_name(folder.name + ".partial")
            partial.mkdir(parents=True, exist_ok=True)
            info = build(phase, world, deps, partial, progress)
            info["seconds"] = round(time.perf_counter() - t0, 1)
            done = {"phase": phase.name, "key": keys[phase.name], "config": phase.config,
                    "deps": {d: keys[d] for d in phase.deps}, "world": digest, "info": info,
                    "built_with": {"git_sha": git_sha(), **environment()}}  # not in the key: see environment()
            (partial / DONE_FILE).write_text(json.dumps(done, indent=1, default=str), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(partial, folder)
            status = "built"
        paths[phase.name] = folder
        seconds = time.perf_counter() - t0
        record[phase.name] = {"key": keys[phase.name], "path": str(folder), "status": status,
                              "seconds": round(seconds, 1)}
        _say(progress, f"[zoo] {phase.name}: {status} in {seconds:.1f} s")
    models = {name: paths[p] / MODEL_DIR for name, p in MODELS.items() if p in paths}
    manifest = {"world": str(world.resolve()), "world_digest": digest, "config": dataclasses.asdict(cfg),
                "models": {k: str(v) for k, v in models.items()}, "phases": record,
                "seconds": round(time.perf_counter() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ZOO_FILE}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, out / ZOO_FILE)
    _say(progress, f"[zoo] done in {manifest['seconds']:.1f} s: {out / ZOO_FILE}")
    return models


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)
