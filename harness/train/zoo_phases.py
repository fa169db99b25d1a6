"""How each kind of zoo artefact is built: `BUILDERS[kind](phase, world, deps, out, progress) -> info`.

A builder writes its model under `out/model` (the folder a zoo adapter loads) and returns what to record in
`artefact.json`. `deps` maps each dependency's phase name to its finished folder.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Blip2Config, LlamaForCausalLM

from harness.train.pretrain import Schedule, VicunaConfig, blip2_tokenizer, build_tokenizer, pretrain_vicuna
from harness.train.pretrain_blip2 import Blip2PretrainConfig, pretrain_blip2
from harness.train.pretrain_vision import VisionPretrainConfig, pretrain_vision
from model_zoo.checkpoints import load_minigpt4, load_state_checked, read_hf_state, save_minigpt4, set_special_ids
from model_zoo.minigpt4 import MiniGPT4Config, MiniGPT4Model

MODEL_DIR = "model"
CURATED_DIR = "cc_sbu_align"
FROZEN_PREFIXES = ("vision_model.", "qformer.", "query_tokens")


def _with_schedule(cls: type, config: dict[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.items() if k in fields}
    values["schedule"] = Schedule(**{**config["schedule"], "seed": config.get("seed", 0)})
    return cls(**values)


def build_tokenizer_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    tokenizer = build_tokenizer(world, phase.config["vocab_size"])
    tokenizer.save_pretrained(out / MODEL_DIR)
    return {"vocab": len(tokenizer)}


def _tokenizer(deps: dict[str, Path]):
    return AutoTokenizer.from_pretrained(deps["tokenizer"] / MODEL_DIR, local_files_only=True)


def build_vision_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    cfg = _with_schedule(VisionPretrainConfig, phase.config)
    return pretrain_vision(cfg, out / MODEL_DIR, phase.config.get("seed", 0), progress)


def build_blip2_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    cfg = _with_schedule(Blip2PretrainConfig, phase.config)
    return pretrain_blip2(world, blip2_tokenizer(_tokenizer(deps)), cfg, deps["vision"] / MODEL_DIR, out / MODEL_DIR,
                          progress)


def build_vicuna_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    cfg = _with_schedule(VicunaConfig, phase.config)
    return pretrain_vicuna(world, _tokenizer(deps), cfg, out / MODEL_DIR, progress)


def assemble_minigpt4(blip2_dir: Path, vicuna_dir: Path, *, qformer: bool = True, projection_layers: int = 1,
                      lora: dict[str, Any] | None = None, seed: int = 0):
    """BLIP-2's ViT + Q-Former + queries and tiny Vicuna, copied bit for bit; a fresh (seeded) projection."""
    blip2_config = Blip2Config.from_pretrained(blip2_dir, local_files_only=True)
    llm = LlamaForCausalLM.from_pretrained(vicuna_dir, local_files_only=True)
    vision = blip2_config.vision_config.to_dict()
    config = MiniGPT4Config(vision=vision, qformer=blip2_config.qformer_config.to_dict() if qformer else None,
                            llm=llm.config.to_dict(), num_query_tokens=blip2_config.num_query_tokens,
                            projection_layers=projection_layers, image_size=vision["image_size"], lora=lora)
    torch.manual_seed(seed)
    model = MiniGPT4Model(config, llm=llm)
    prefixes = FROZEN_PREFIXES if qformer else ("vision_model.",)
    state = read_hf_state(Path(blip2_dir), prefixes)
    own = [k for k in model.state_dict() if k.startswith(prefixes)]
    report = load_state_checked(model, state, str(blip2_dir), expected=own)
    if report.missing:
        raise ValueError(report.summary())
    tokenizer = AutoTokenizer.from_pretrained(vicuna_dir, local_files_only=True)
    set_special_ids(model.llm, tokenizer)
    return model, tokenizer


def with_lora(model: MiniGPT4Model, lora: dict[str, Any]) -> MiniGPT4Model:
    """The same model with LoRA adapters on its LLM (peft starts them as a no-op)."""
    config = dataclasses.replace(model.config, lora=lora)
    wrapped = MiniGPT4Model(config, llm=model.llm)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("llm.")}
    # The LLM is shared by reference (now wrapped by peft); every other tensor must be copied, none left over.
    result = wrapped.load_state_dict(own, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("llm.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"with_lora: missing {missing}, unexpected {result.unexpected_keys}")
    return wrapped


def _data(world: Path, kind: str, out: Path, config: dict[str, Any], deps: dict[str, Path]) -> dict[str, Any]:
    if kind == "curated":  # what the zoo's own curation phase accepted (a cc_sbu_align folder)
        return {"data_kind": "cc_sbu_align", "data_path": str(deps["curate"] / CURATED_DIR)}
    if kind == "pairs":
        return {"data_kind": "pairs_jsonl", "data_path": str(world / "stage1/pairs.jsonl")}
    if kind == "cc_sbu_align":
        return {"data_kind": "cc_sbu_align", "data_path": str(world / "cc_sbu_align")}
    if kind == "locna":
        return {"data_kind": "locna", "data_path": str(world / "locna/narratives.jsonl"),
                "data_images": str(world / "coco/train2017")}
    if kind == "vqa_mix":
        from harness.train.zoo_data import VQA_MIX, write_vqa_mix

        described = (deps["curate"] / CURATED_DIR if config.get("described") == "curated"
                     else world / "cc_sbu_align")
        path = write_vqa_mix(world, out / "vqa_mix.jsonl", config["vqa_share"], config["seed"], described)
        return {"data_kind": VQA_MIX, "data_path": str(path)}
    raise ValueError(f"unknown zoo training data {kind!r}")


def build_minigpt4_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    from harness.train.loop import TrainConfig, train
    from harness.train.zoo_data import extra_kinds

    c = phase.config
    if c["stage"] == 1:
        model, tokenizer = assemble_minigpt4(deps["blip2"] / MODEL_DIR, deps["vicuna"] / MODEL_DIR,
                                             qformer=c.get("qformer", True),
                                             projection_layers=c.get("projection_layers", 1), lora=c.get("lora"),
                                             seed=c["seed"])
    else:
        init = phase.deps[0]  # the stage-1 model (a curation phase may follow it as the data source)
        model, tokenizer = load_minigpt4(deps[init] / MODEL_DIR)
        if c.get("lora") and model.config.lora is None:
            model = with_lora(model, c["lora"])
    spec = c["train"]
    cfg = TrainConfig(stage=c["stage"], out_dir=str(out), steps=spec["steps"], batch_size=spec["batch_size"],
                      lr=spec["lr"], min_lr=spec["min_lr"], warmup_steps=spec["warmup"],
                      warmup_start_lr=spec["lr"] / 100, max_txt_len=spec["max_txt_len"],
                      crop_min_scale=spec.get("crop_min_scale", 0.5), seed=c["seed"],
                      checkpoint_every=max(25, spec["steps"] // 4), train_qformer=c.get("train_qformer", False),
                      train_lora=c.get("train_lora", False), progress=progress, extra={"zoo_phase": phase.name},
                      **_data(world, c["data"], out, c, deps))
    with extra_kinds():
        summary = train(model, tokenizer, cfg)
    save_minigpt4(model, tokenizer, out / MODEL_DIR)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    losses = summary["losses"]
    return {"data_kind": cfg.data_kind, "data_path": cfg.data_path,
            "trainable": len(summary["trainable"]), "first_loss": losses[0] if losses else None,
            "last_losses": losses[-10:], "train_seconds": summary["seconds"],
            "image_reading": _image_reading(out / MODEL_DIR, c["seed"])}


def _image_reading(model_dir: Path, seed: int) -> dict[str, float]:
    """The trained model's `image_reading` probe (about 2 s), loaded as the harness loads it."""
    from harness.train.image_reading import image_reading, minigpt4_next_logits
    from model_zoo.minigpt4 import MiniGPT4Adapter

    adapter = MiniGPT4Adapter(checkpoint=str(model_dir), device="cpu")
    return image_reading(minigpt4_next_logits(adapter), adapter.tokenizer, n=120, seed=seed)


def build_blip2_ft_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    from harness.train.blip2_ft import finetune_blip2

    c = phase.config
    fields = {f.name for f in dataclasses.fields(Schedule)}
    schedule = Schedule(**{k: v for k, v in c.items() if k in fields})
    data = deps["curate"] / CURATED_DIR if c["data"] == "curated" else world / "cc_sbu_align"
    return finetune_blip2(deps["blip2"] / MODEL_DIR, data, out / MODEL_DIR, schedule, c["max_txt_len"], progress)


SCRIPTED_DECISIONS = "scripted_verifier_decisions.jsonl"


PLACE = re.compile(r"\b(?:(top|bottom) (left|right) corner|in the (center)|on the (left|right) side|"
                   r"at the (top|bottom))\b", re.IGNORECASE)
COUNT = re.compile(r"\b(a single|one|two|three|four) objects?\b", re.IGNORECASE)
TOTAL = re.compile(r"\bthere are (two|three|four) .+ in total\b", re.IGNORECASE)
COUNT_WORDS = {"a single": 1, "one": 1, "two": 2, "three": 3, "four": 4}


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def placed_objects(text: str) -> set[tuple[str, str]]:
    """(place, category) for every sentence that puts one object in one place ("In the top left corner there
    is a small red dog."), the way a detailed description of the world places them."""
    from harness.judges.rule_judge import read_caption

    placed = set()
    for sentence in _sentences(text):
        places = PLACE.findall(sentence)
        objects = read_caption(sentence)[0]
        if len(places) == 1 and len(objects) == 1:
            placed.add((" ".join(w for w in places[0] if w).lower(), next(iter(objects))))
    return placed


def object_count(text: str) -> int | None:
    """The number of objects a description says the picture holds ("two objects"), if it says one."""
    found = COUNT.search(text)
    return COUNT_WORDS[found[1].lower()] if found else None


def refine(description: str, truth: str) -> str:
    """The paper's manual refinement, scripted: the sentences of `description` that do not match the image
    removed, read against `truth` (the image's release caption, which names and places every object): one that
    names an object the image lacks, one that places another object of a category when the description has
    already placed as many of it as the image holds ("a stop sign" in a second corner of a picture with one stop
    sign), or relates or counts two or more of a category the image holds one of, and one that miscounts the
    objects. Places and colours are not checked (the stage-1 model's are rarely right, and nothing would be
    left)."""
    from collections import Counter

    from harness.judges.rule_judge import COMPARISON, read_caption

    objects, count = read_caption(truth)[0], object_count(truth)
    holds = Counter(category for _, category in placed_objects(truth))
    placed: Counter[str] = Counter()
    kept = []
    for sentence in _sentences(description):
        said, named = object_count(sentence), read_caption(sentence)[0]
        if not named <= objects or (said is not None and count is not None and said != count):
            continue  # an object the image lacks, or "two objects" in a picture of three
        compared = COMPARISON.match(sentence.strip())
        if holds and compared:
            a, b = read_caption(compared["a"])[0], read_caption(compared["b"])[0]
            if len(a) == 1 and a == b and holds[next(iter(a))] < 2:
                continue  # "the purple banana is larger than the green banana" about one banana
        many = TOTAL.search(sentence)
        if holds and many and len(named) == 1 and holds[next(iter(named))] != COUNT_WORDS[many[1].lower()]:
            continue  # "there are two bananas in total" about one banana
        one = placed_objects(sentence)
        if one and holds:
            category = next(iter(one))[1]
            if placed[category] >= holds[category]:
                continue
            placed[category] += 1
        kept.append(sentence)
    return " ".join(kept)


def scripted_verification(queue: Path, truth: dict[str, str], out: Path, edit: bool = False) -> dict[str, int]:
    """The miniature's stand-in for the paper's manual verification (NOT people): for each queue row that passed
    the rule filters, accept when the fixed description names at least one object and only objects the image
    holds (read as the coverage judge reads objects, against the world's release caption of the image, which
    names every object), else reject. With `edit`, the rater first refines the description as the paper's
    authors did (`refine`: the sentences that do not match the image removed) and accepts what still names an
    object, as an edit (the refined text in `caption`) when it changed. Decisions are written as a filled-in
    queue (`out`), the file people would return, and go through the same `queue_in` path."""
    from harness.judges.rule_judge import read_caption

    rows, counts = [], {"accept": 0, "edit": 0, "reject": 0} if edit else {"accept": 0, "reject": 0}
    for line in queue.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["rule"] == "passed":
            text = refine(row["fixed"], truth[row["image_id"]]) if edit else row["fixed"]
            named = read_caption(text)[0]
            if not (named and named <= read_caption(truth[row["image_id"]])[0]):
                row["decision"] = "reject"
            elif text != row["fixed"]:
                row["decision"], row["caption"] = "edit", text
            else:
                row["decision"] = "accept"
            counts[row["decision"]] += 1
        rows.append(row)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return counts


def build_curate_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    """Paper Sec. 3.2 with the stage-1 model: describe (+ "Continue"), post-edit with the fix-up prompt, rule
    filters, then the manual verification: with `verifier: world` a scripted rater (`scripted_verification`, not
    people) refines each description (`refine`) and fills in the verification queue, and the second pass exports
    its accepts and edits; `verifier: world-no-edit` only accepts or rejects whole descriptions; with
    `verifier: none` whatever passed the rules is accepted (`auto_accept`). The images are the world's
    cc_sbu_align ones, the first `images` of them; the accepted set is a cc_sbu_align folder stage 2 trains on."""
    from harness.judges import make_judge
    from harness.train.curate import QUEUE_FILE, curate
    from model_zoo.minigpt4 import MiniGPT4Adapter
    from tasks.readers.ccsbu import read_cc_sbu_align

    c = phase.config
    pairs = read_cc_sbu_align(world / "cc_sbu_align")[: c["images"]]
    adapter = MiniGPT4Adapter(checkpoint=str(deps["stage1"] / MODEL_DIR))
    scripted = c.get("verifier", "none") in ("world", "world-no-edit")

    def run(queue_in: Path | None):
        return curate(adapter, [(p.image_id, p.image_path) for p in pairs], out / CURATED_DIR,
                      judge=make_judge(c["judge"]), store_path=out / "curation.sqlite", min_tokens=c["min_tokens"],
                      max_new_tokens=c["max_new_tokens"], batch_size=c["batch_size"], seed=c["seed"],
                      progress=progress, min_words=c["min_words"], auto_accept=not scripted, queue_in=queue_in,
                      model_name="minigpt4-tiny-stage1")

    truth = {p.image_id: p.caption for p in pairs}  # the world's release caption names every object
    report, verified = run(None), None
    if scripted:  # the second pass reads every answer and fix-up from the store; only the decisions are new
        decisions = out / CURATED_DIR / SCRIPTED_DECISIONS
        verified = scripted_verification(out / CURATED_DIR / QUEUE_FILE, truth, decisions,
                                         edit=c["verifier"] == "world")
        report = run(decisions)
    if report.accepted == 0:
        raise RuntimeError(f"curation accepted none of {report.images} descriptions: {report.rejected}")
    info = {k: v for k, v in report.to_dict().items() if k not in ("store", "out", "run_id")}
    return {**info, "verifier": "scripted (world captions), not people" if scripted else "none",
            "scripted_decisions": verified,
            "detail": curated_detail(out / CURATED_DIR, truth)}


def curated_detail(folder: Path, truth: dict[str, str]) -> dict[str, float]:
    """How much of each image the accepted descriptions (`folder`'s filter_cap.json) name, read as the coverage
    judge reads objects, against `truth` (the world's release caption of each image, which names every object):
    `complete`, the share that names every category of its image; `one_of_several`, the share that names one
    category of an image holding two or more (what stage 2 then learns to write for a picture of several things);
    `categories_named` and `image_categories`, the means. Refining only removes sentences, so a stage-1 model that
    names one category per picture leaves descriptions of one object, however the rater reads them."""
    from harness.judges.rule_judge import read_caption

    rows = json.loads((folder / "filter_cap.json").read_text(encoding="utf-8"))["annotations"]
    if not rows:
        return {"pairs": 0}
    named, held = zip(*((read_caption(r["caption"])[0], read_caption(truth[r["image_id"]])[0]) for r in rows),
                      strict=True)
    n = len(rows)
    return {"pairs": n, "complete": sum(h <= d for d, h in zip(named, held, strict=True)) / n,
            "one_of_several": sum(len(d) == 1 and len(h) >= 2 for d, h in zip(named, held, strict=True)) / n,
            "categories_named": sum(map(len, named)) / n, "image_categories": sum(map(len, held)) / n}


BUILDERS = {"tokenizer": build_tokenizer_phase, "vision": build_vision_phase, "blip2": build_blip2_phase,
            "vicuna": build_vicuna_phase, "minigpt4": build_minigpt4_phase, "blip2_ft": build_blip2_ft_phase,
            "curate": build_curate_phase}
