"""The tiny zoo: a miniature build end to end, content-hash caching, loading, and frozen parts bit for bit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from harness.train.pretrain import Schedule, VicunaConfig, vicuna_text
from harness.train.pretrain_blip2 import Blip2PretrainConfig
from harness.train.pretrain_vision import VisionPretrainConfig
from harness.train.zoo import MODELS, ZOO_FILE, CurationSpec, StageSpec, ZooConfig, build_zoo, phases
from harness.types import GenerationSettings, ImageRef, Request
from model_zoo.checkpoints import load_minigpt4
from model_zoo.zoo_models import ZooBlip2, ZooBlip2FT, ZooMiniGPT4, ZooMiniGPT4FtVicuna, ZooNotBuiltError
from tasks.world import build_world


def tiny_config(**changes) -> ZooConfig:
    def schedule(steps: int, lr: float = 1e-3) -> Schedule:
        return Schedule(steps=steps, batch_size=4, lr=lr, min_lr=lr / 10, warmup=1)

    stage = {"batch_size": 4, "lr": 1e-3, "min_lr": 1e-4, "warmup": 1}
    cfg = ZooConfig(
        vocab_size=400,
        vision=VisionPretrainConfig(image_size=32, hidden=32, layers=1, heads=2, eval_scenes=8,
                                    schedule=schedule(3)),
        blip2=Blip2PretrainConfig(qformer_hidden=32, qformer_layers=1, opt_hidden=32, opt_layers=1, heads=2,
                                  schedule=schedule(3)),
        # enough steps for the tiny Vicuna to write English words, so that curation accepts some descriptions
        vicuna=VicunaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                            max_len=64, schedule=schedule(120, lr=1e-2)),
        stage1=StageSpec(steps=2, max_txt_len=16, **stage), stage2=StageSpec(steps=2, max_txt_len=32, **stage),
        # the scripted verifier would reject most of a 120-step Vicuna's words (test_scripted_verifier_... below)
        curation=CurationSpec(images=6, min_tokens=8, max_new_tokens=16, batch_size=4, min_words=1, verifier="none"),
        blip2_ft=schedule(2))
    return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


@pytest.fixture(scope="module")
def zoo(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    build_zoo(world, out, config=tiny_config(), progress=False)
    return out


def statuses(zoo: Path) -> dict[str, str]:
    return {name: p["status"] for name, p in json.loads((zoo / ZOO_FILE).read_text())["phases"].items()}


def test_build_writes_every_model(zoo):
    manifest = json.loads((zoo / ZOO_FILE).read_text())
    assert set(manifest["models"]) == set(MODELS)
    for path in manifest["models"].values():
        assert Path(path).is_dir()
    assert set(statuses(zoo).values()) == {"built"}
    assert not list((zoo / "artefacts").glob("*.partial"))


def test_every_artefact_records_what_it_was_built_with(zoo):
    import torch
    import transformers

    artefacts = sorted((zoo / "artefacts").glob("*/artefact.json"))
    assert len(artefacts) >= 7, artefacts  # tokenizer, vision, blip2, vicuna, stage1, curate, stage2, ...
    for done in artefacts:
        built_with = json.loads(done.read_text())["built_with"]
        assert built_with["torch"] == torch.__version__ and built_with["transformers"] == transformers.__version__
        assert built_with["cpu"] and built_with["torch_threads"] >= 1 and "pillow" in built_with, done
        assert "built_with" not in json.loads(done.read_text())["config"]  # the key never reads it


def test_second_build_is_a_no_op(world, zoo):
    before = {p: p.stat().st_mtime_ns for p in (zoo / "artefacts").rglob("*") if p.is_file()}
    build_zoo(world, zoo, config=tiny_config(), progress=False)
    assert set(statuses(zoo).values()) == {"cached"}
    assert {p: p.stat().st_mtime_ns for p in (zoo / "artefacts").rglob("*") if p.is_file()} == before


def test_a_config_change_rebuilds_only_what_depends_on_it(world, zoo, tmp_path):
    # the Vicuna changes: every MiniGPT-4 is rebuilt, BLIP-2 and BLIP-2 FT are not
    small = tiny_config(variants=("blip2-ft",))
    changed = dataclasses.replace(small, vicuna=dataclasses.replace(small.vicuna, system_prob=0.0))
    build_zoo(world, zoo, config=changed, progress=False)
    assert statuses(zoo) == {"tokenizer": "cached", "vision": "cached", "blip2": "cached", "vicuna": "built",
                             "stage1": "built", "curate": "built", "stage2": "built", "blip2-ft": "built"}
    build_zoo(world, zoo, config=tiny_config(), progress=False)  # the first config: all still there
    assert set(statuses(zoo).values()) == {"cached"}


def test_keys_follow_config_and_dependencies():
    base = {p.name: p for p in phases(tiny_config())}
    assert base["stage2"].deps == ("stage1", "curate") and set(base["stage1"].deps) == {"blip2", "vicuna"}
    assert set(base["blip2"].deps) == {"tokenizer", "vision"} and base["vision"].deps == ()
    assert base["curate"].deps == ("stage1",) and base["noqformer-stage2"].deps == ("noqformer-stage1", "curate")
    release = {p.name: p for p in phases(tiny_config(stage2_data="cc_sbu_align"))}
    assert "curate" not in release and release["stage2"].deps == ("stage1",)
    assert base["ftvicuna"].config["lora"] and base["ftvicuna"].config["data"] == "vqa_mix"
    both = {p.name for p in phases(tiny_config(ftqformer_stages=(1, 2)))}
    assert "ftqformer-stage1" in both and "ftqformer-stage1" not in base


def request(world: Path, prompt: str = "Describe this image in detail.") -> tuple[Request, Image.Image]:
    path = next((world / "coco/val2014").glob("*.jpg"))
    req = Request(task="t", sample_id="0", prompt=prompt, image=ImageRef(source="t", id="0", path=str(path)),
                  settings=GenerationSettings(max_new_tokens=6))
    return req, Image.open(path).convert("RGB")


@pytest.mark.parametrize("adapter", [ZooMiniGPT4, ZooMiniGPT4FtVicuna, ZooBlip2, ZooBlip2FT])
def test_loaded_zoo_models_generate(world, zoo, adapter):
    model = adapter(zoo=str(zoo))
    req, img = request(world)
    (out,) = model.generate([req], [img])
    assert isinstance(out.text, str) and 0 < out.completion_tokens <= 6
    scored = model.score_choices([dataclasses.replace(req, choices=("red", "blue"))], [img])
    assert len(scored[0].choice_logprobs) == 2


def test_missing_zoo_says_how_to_build_it(tmp_path):
    with pytest.raises(ZooNotBuiltError, match="mgbench zoo build"):
        ZooMiniGPT4(zoo=str(tmp_path))


def artefact(zoo: Path, phase: str) -> Path:
    return Path(json.loads((zoo / ZOO_FILE).read_text())["phases"][phase]["path"]) / "model"


@pytest.mark.parametrize("model_phase", ["stage1", "stage2", "noqformer-stage2", "locna", "3layers-stage2"])
def test_frozen_parts_are_the_sources_bit_for_bit(zoo, model_phase):
    model, _ = load_minigpt4(artefact(zoo, model_phase))
    state = model.state_dict()
    blip2 = load_file(artefact(zoo, "blip2") / "model.safetensors")
    vicuna = load_file(artefact(zoo, "vicuna") / "model.safetensors")
    vision = [k for k in blip2 if k.startswith("vision_model.")]
    qformer = [k for k in blip2 if k.startswith(("qformer.", "query_tokens"))]
    shared = vision + (qformer if model.qformer is not None else [])
    assert vision and qformer and vicuna
    for key in shared:
        assert torch.equal(state[key], blip2[key]), key
    for key, tensor in vicuna.items():
        assert torch.equal(state[f"llm.{key}"], tensor), key
    assert not any(k.startswith("llm.") and k[4:] not in vicuna for k in state)


def test_blip2_starts_from_the_pretrained_vit_and_keeps_it_frozen(zoo):
    vit = load_file(artefact(zoo, "vision") / "model.safetensors")
    blip2 = load_file(artefact(zoo, "blip2") / "model.safetensors")
    assert vit and {f"vision_model.{k}" for k in vit} == {k for k in blip2 if k.startswith("vision_model.")}
    for key, tensor in vit.items():
        assert torch.equal(blip2[f"vision_model.{key}"], tensor), key
    info = json.loads((artefact(zoo, "vision").parent / "artefact.json").read_text())["info"]
    assert 0 <= info["tag_recall"] <= 1 and 0 <= info["tag_precision"] <= 1 and info["eval_scenes"] == 8
    assert 0 <= info["colour_recall"] <= 1 and 0 <= info["colour_precision"] <= 1


def test_unfrozen_vit_trains_with_blip2(world, tmp_path):
    cfg = tiny_config(variants=())
    cfg = dataclasses.replace(cfg, blip2=dataclasses.replace(cfg.blip2, freeze_vision=False))
    build_zoo(world, tmp_path, config=cfg, progress=False)
    vit = load_file(artefact(tmp_path, "vision") / "model.safetensors")
    blip2 = load_file(artefact(tmp_path, "blip2") / "model.safetensors")
    assert any(not torch.equal(blip2[f"vision_model.{k}"], t) for k, t in vit.items())


def test_frozen_lm_blip2_keeps_the_text_pretrained_opt_bit_for_bit(world, zoo, tmp_path):
    from transformers import AutoTokenizer, Blip2ForConditionalGeneration, Blip2VisionModel

    from harness.train.pretrain import blip2_tokenizer
    from harness.train.pretrain_blip2 import blip2_config, pretrain_blip2, pretrain_opt_text

    cfg = dataclasses.replace(tiny_config().blip2, freeze_lm=True, lm_steps=4, lm_lr=1e-2)
    tokenizer = blip2_tokenizer(AutoTokenizer.from_pretrained(artefact(zoo, "tokenizer")))
    info = pretrain_blip2(world, tokenizer, cfg, artefact(zoo, "vision"), tmp_path / "blip2", progress=False)
    saved = load_file(tmp_path / "blip2" / "model.safetensors")
    # the OPT as text pre-training alone leaves it, from the same seeded start
    torch.manual_seed(cfg.schedule.seed)
    vision = Blip2VisionModel.from_pretrained(artefact(zoo, "vision"))
    alone = Blip2ForConditionalGeneration(blip2_config(tokenizer, cfg, vision.config))
    start = {k: v.clone() for k, v in alone.language_model.state_dict().items()}
    pretrain_opt_text(alone, tokenizer, cfg, progress=False)
    trained = alone.language_model.state_dict()
    assert len(info["lm_losses"]) == 4
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # text pre-training moved it
    for key, tensor in trained.items():  # and BLIP-2's training did not
        assert torch.equal(saved[f"language_model.{key}"], tensor), key
    # while the Q-Former trained from its start
    assert any(not torch.equal(saved[f"qformer.{k}"], v) for k, v in alone.qformer.state_dict().items())


def test_frozen_lm_fields_enter_the_blip2_key_only_when_on():
    off = {p.name: p for p in phases(tiny_config())}["blip2"]
    assert not {"freeze_lm", "lm_steps", "lm_lr"} & set(off.config)
    cfg = tiny_config()
    on = {p.name: p for p in phases(dataclasses.replace(cfg, blip2=dataclasses.replace(cfg.blip2, freeze_lm=True)))}
    assert on["blip2"].config["freeze_lm"] is True and on["blip2"].config["lm_steps"] == 400
    assert "place_share" not in off.config
    placed = dataclasses.replace(cfg, blip2=dataclasses.replace(cfg.blip2, place_share=0.3))
    assert {p.name: p for p in phases(placed)}["blip2"].config["place_share"] == 0.3


def test_place_share_captions_that_share_of_fresh_scenes_by_placing_every_object():
    import random

    from harness.train.pretrain_blip2 import fresh_scenes
    from tasks.world.captions import placed_caption, reading_order, region_phrase
    from tasks.world.scenes import sample_scene

    _, plain = fresh_scenes(0, 3, 40)
    _, mixed = fresh_scenes(0, 3, 40, place_share=0.5)
    assert all(len(c) == 5 for c in plain)  # off: each scene's five COCO-style captions
    assert 10 <= sum(len(c) == 1 for c in mixed) <= 30  # on: about half captioned by one placed caption
    rng = random.Random(5)
    for _ in range(30):
        scene = sample_scene(rng, 0)
        caption = placed_caption(rng, scene)
        at = 0
        for obj in reading_order(scene):  # each object's place, in reading order
            found = caption.find(region_phrase(scene, obj), at)
            assert found >= at, (caption, region_phrase(scene, obj))
            at = found + 1


def test_ftqformer_trains_the_qformer_and_nothing_else_frozen(zoo):
    model, _ = load_minigpt4(artefact(zoo, "ftqformer-stage2"))
    blip2 = load_file(artefact(zoo, "blip2") / "model.safetensors")
    state = model.state_dict()
    assert any(not torch.equal(state[k], blip2[k]) for k in blip2 if k.startswith("qformer."))
    assert all(torch.equal(state[k], blip2[k]) for k in blip2 if k.startswith("vision_model."))


def test_curation_phase_feeds_stage2_with_what_it_accepted(zoo):
    from tasks.readers.ccsbu import read_cc_sbu_align

    manifest = json.loads((zoo / ZOO_FILE).read_text())
    folder = Path(manifest["phases"]["curate"]["path"])
    info = json.loads((folder / "artefact.json").read_text())["info"]
    accepted = read_cc_sbu_align(folder / "cc_sbu_align")
    assert info["images"] == 6 and info["accepted"] == len(accepted) > 0 and info["verifier"] == "none"
    assert (folder / "cc_sbu_align/verification_queue.jsonl").exists()
    stage2 = Path(manifest["phases"]["stage2"]["path"])
    used = json.loads((stage2 / "artefact.json").read_text())["info"]
    assert used["data_kind"] == "cc_sbu_align" and used["data_path"] == str(folder / "cc_sbu_align")
    assert info["detail"]["pairs"] == len(accepted)


def test_curated_detail_counts_how_much_of_each_image_a_description_names(tmp_path):
    from harness.train.zoo_phases import curated_detail

    truth = {"1": "A red dog left of a blue cat.", "2": "A green bus.", "3": "A dog, a cat and a bus.",
             "4": "Two dogs."}
    captions = {"1": "In the top left corner there is a small red dog. The rest of the image is empty.",
                "2": "There is a green bus in the center.",
                "3": "There is a dog on the left. A bus is on the right.",
                "4": "There is a dog. There is another dog."}
    (tmp_path / "filter_cap.json").write_text(json.dumps(
        {"annotations": [{"image_id": k, "caption": v} for k, v in captions.items()]}))
    detail = curated_detail(tmp_path, truth)
    # complete: 2 (the bus) and 4 (dogs); one of several: 1 (the dog of a dog and a cat); 3 names two of three
    assert detail == {"pairs": 4, "complete": 0.5, "one_of_several": 0.25, "categories_named": 5 / 4,
                      "image_categories": 7 / 4}


def test_scripted_verifier_accepts_only_descriptions_true_to_the_image(tmp_path):
    from harness.train.zoo_phases import scripted_verification

    truth = {"1": "Two objects. A small red dog is left of a large blue cat.", "2": "A green bus on gray."}
    rows = [("1", "A red dog. A cat is next to it.", "passed"),  # only objects the image holds: accept
            ("1", "A dog.", "passed"),  # a true part: accept
            ("1", "A dog and a bus.", "passed"),  # a bus the image lacks: reject
            ("2", "This picture contains two objects.", "passed"),  # names nothing: reject
            ("2", "A bus. A bus.", "repetition")]  # the rules rejected it: left undecided
    queue = tmp_path / "queue.jsonl"
    queue.write_text("".join(json.dumps({"image_id": i, "image": f"{i}.jpg", "raw": t, "fixed": t, "rule": r,
                                         "decision": None}) + "\n" for i, t, r in rows))
    counts = scripted_verification(queue, truth, tmp_path / "decided.jsonl")
    decided = [json.loads(line) for line in (tmp_path / "decided.jsonl").read_text().splitlines()]
    assert [d["decision"] for d in decided] == ["accept", "accept", "reject", "reject", None]
    assert counts == {"accept": 2, "reject": 2}
    assert [d["fixed"] for d in decided] == [t for _, t, _ in rows]  # the texts are the queue's, untouched


def test_vicuna_text_ends_answers_with_the_separator():
    import random

    cfg = VicunaConfig(system_prob=0.0, nospace_prob=1.0)
    text = vicuna_text("###Human: Write a poem about a dog. ###Assistant: A dog.", random.Random(0), cfg)
    assert text == "###Human: Write a poem about a dog.###Assistant: A dog.###"
    assert vicuna_text("A dog is an animal.", random.Random(0), cfg) == "A dog is an animal."


def test_zoo_config_from_yaml_round_trips_and_names_unknown_fields(tmp_path):
    import yaml

    from harness.train.zoo import load_zoo_config, zoo_config_from_dict

    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(tiny_config())))))
    assert load_zoo_config(path) == tiny_config()
    changed = zoo_config_from_dict({"stage1": {"steps": 7}, "blip2": {"schedule": {"lr": 0.5}}, "variants": ["locna"]})
    assert changed.stage1.steps == 7 and changed.blip2.schedule.lr == 0.5 and changed.variants == ("locna",)
    assert changed.stage2 == ZooConfig().stage2
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['blip2.schedule.lrr'\]"):
        zoo_config_from_dict({"blip2": {"schedule": {"lrr": 1}}})


def test_the_wide_vicuna_recipe_changes_only_what_it_names():
    from harness.train.zoo import load_zoo_config

    recipe = load_zoo_config(Path(__file__).parents[1] / "configs" / "zoo-wide-vicuna.yaml")
    default = ZooConfig()
    vicuna = recipe.vicuna
    assert (vicuna.hidden_size, vicuna.intermediate_size, vicuna.num_hidden_layers) == (256, 704, 2)
    assert recipe.blip2.freeze_lm and (recipe.stage2.lr, recipe.stage2.min_lr) == (1e-4, 1e-5)
    assert dataclasses.replace(recipe, vicuna=default.vicuna, blip2=default.blip2, stage2=default.stage2) == default
    assert dataclasses.replace(recipe.vicuna, hidden_size=160, intermediate_size=448, num_hidden_layers=4) == \
        default.vicuna
    assert dataclasses.replace(recipe.blip2, freeze_lm=False) == default.blip2


def test_demo_models_are_the_zoo(tmp_path):
    from harness.cli import DEMO_MODELS

    assert set(DEMO_MODELS) == set(MODELS)


def test_demo_fills_every_table_from_the_zoo(world, zoo, tmp_path, capsys):
    """The main job on a small world and a miniature zoo: every paper table gets this run's numbers (the
    human-rated columns await ratings, with the commands that open the forms)."""
    import yaml

    from harness.cli import main

    config = tmp_path / "zoo.yaml"
    config.write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(tiny_config())))))
    store, out = tmp_path / "demo.sqlite", tmp_path / "report"
    code = main(["demo", "--world", str(world), "--zoo", str(zoo), "--zoo-config", str(config), "--limit", "2",
                 "--store", str(store), "--out", str(out), "--no-progress"])
    printed, errors = capsys.readouterr()
    assert code == 0, errors[-2000:]
    assert set(statuses(zoo).values()) == {"cached"}  # the zoo was reused, not retrained
    assert f"leaderboard: {(out / 'index.html').resolve()}" in printed and "mgbench rate serve" in printed
    report = json.loads((out / "report.json").read_text())
    assert [t["number"] for t in report["tables"]] == [1, 2, 3, 4, 5, 6]
    for table in report["tables"]:
        assert not table["missing_tasks"], table["number"]
        for row in table["rows"]:
            assert row["model"] is not None, (table["number"], row["role"])  # every paper row is played
            for col, cell in zip(table["columns"], row["cells"], strict=True):
                if col["human"] and col["metric"].endswith("_human"):
                    assert cell["status"] == "awaiting ratings", (table["number"], col["label"])
                elif cell["value"] is None:  # only a number that does not exist: CHAIRi with no object named
                    assert cell["status"].startswith("undefined: no object words"), (table["number"], col, cell)
        if table["human"]:
            assert table["rate_commands"] and table["judge_labels"]


def test_dense_labels_put_each_category_where_its_glyph_is_drawn():
    import random

    from harness.train.pretrain_vision import category_index, colour_index, patch_targets, tag_scores
    from tasks.world.scenes import sample_scene

    index = category_index()
    scenes = [sample_scene(random.Random(k), 0) for k in range(20)]
    targets = patch_targets(scenes, 64, 8, index)  # (20, 64 patches, 25)
    assert targets.shape == (20, 64, len(index) + 1)
    assert torch.allclose(targets.sum(-1), torch.ones(20, 64))
    for scene, t in zip(scenes, targets, strict=True):
        present = {c for c in range(1, len(index) + 1) if t[:, c].sum() > 0}
        assert present == {index[n] for n in scene.categories()}
        for obj in scene.objects:  # the patch under a glyph's centre holds that category and no other
            cx, cy = obj.centre
            row, col = int(cy / scene.height * 64) // 8, int(cx / scene.width * 64) // 8
            if obj.category.shape != "ring":  # a ring's centre is its hole
                share = t[row * 8 + col]
                assert share[index[obj.name]] > 0.2 and share[1:].argmax() + 1 == index[obj.name], obj
        corner = t[0] if all(o.box[0] > 0.13 * scene.width or o.box[1] > 0.13 * scene.height
                             for o in scene.objects) else None
        if corner is not None:
            assert corner[0] == 1.0  # the top-left patch is background
    colours = colour_index()
    colour_targets = patch_targets(scenes, 64, 8, colours, "colour")  # the same masks, labelled by colour
    assert colour_targets.shape == (20, 64, len(colours) + 1)
    assert torch.equal(colour_targets[..., 0], targets[..., 0])  # background where the category map has it
    for scene, t in zip(scenes, colour_targets, strict=True):
        assert {c for c in range(1, len(colours) + 1) if t[:, c].sum() > 0} == {colours[o.colour]
                                                                                 for o in scene.objects}
        for obj in scene.objects:
            cx, cy = obj.centre
            row, col = int(cy / scene.height * 64) // 8, int(cx / scene.width * 64) // 8
            if obj.category.shape != "ring":
                assert t[row * 8 + col][1:].argmax() + 1 == colours[obj.colour], obj
    present = torch.zeros(2, 5)
    present[0, [1, 2]] = 1
    present[1, 3] = 1
    predicted = torch.zeros(2, 5)
    predicted[0, [0, 1, 4]] = 1  # column 0 (background) never counts
    assert tag_scores(predicted, present) == (1 / 3, 1 / 2)


def named_categories(text: str) -> set[str]:
    """The world's categories a text names, by their mention words (singular or plural)."""
    import re

    from tasks.world.vocab import CATEGORIES

    padded = " " + re.sub(r"[^a-z ]", " ", text.lower()) + " "
    found = set()
    words = sorted(((w, c.name) for c in CATEGORIES for w in (*c.singulars, c.plural)), key=lambda x: -len(x[0]))
    for word, name in words:  # longest first: "hot dog" is not a dog
        if f" {word} " in padded:
            found.add(name)
            padded = padded.replace(f" {word} ", "  ")
    return found


def test_caption_pages_repeat_one_scene_in_several_captions():
    import random

    from harness.train.vicuna_corpus import caption_page
    from tasks.world.scenes import sample_scene

    for seed in range(40):
        rng = random.Random(seed)
        scene = sample_scene(rng, 0)
        lines = caption_page(rng, scene).split("\n")
        assert 2 <= len(lines) <= 4
        for line in lines:
            named = named_categories(line)
            assert named, line  # every caption names something of the scene ...
            assert named <= set(scene.categories()), (line, scene.categories())  # ... and nothing else


def test_context_records_show_the_content_first_then_ask_about_it():
    import random

    from harness.train.vicuna_corpus import BREVITIES, DEICTIC_INSTRUCTIONS, EMPHASES, context_record
    from tasks.world.scenes import sample_scene

    kinds, emphasised = set(), 0
    for seed in range(70):
        rng = random.Random(seed)
        scene = sample_scene(rng, 0)
        kind = [*DEICTIC_INSTRUCTIONS, "question"][seed % 7]
        if kind == "ad" and scene.count("person"):
            continue
        text = context_record(rng, scene, kind)
        assert text.startswith("###Human: ") and text.count(" ###Assistant: ") == 1
        human, answer = text[len("###Human: "):].split(" ###Assistant: ")
        if kind == "question":
            # the answer is the scene's: a colour, a count, a category or a direction, as A-OKVQA asks them
            obj_words = {o.colour for o in scene.objects} | {o.name for o in scene.objects} | \
                {str(n) for n in range(1, 5)} | {"left", "right", "above", "below"}
            assert answer.split(".")[0] in obj_words, (human, answer)
        else:
            request = human
            extras = BREVITIES if kind == "brief" else EMPHASES  # "... Keep it short." / "... Be thorough."
            while request.endswith(extras):
                request = request[: -len(next(e for e in extras if request.endswith(e)))].rstrip()
            emphasised += request != human
            assert any(request.endswith(i) for i in DEICTIC_INSTRUCTIONS[kind]), human
            if kind == "brief":  # one short sentence naming the scene's objects
                assert len(answer.split()) <= 25 and answer.count(".") <= 1, answer
                assert named_categories(answer) <= set(scene.categories()), answer
        content_objects = named_categories(human)
        assert content_objects and content_objects <= set(scene.categories()), human
        kinds.add(kind)
    assert kinds == {*DEICTIC_INSTRUCTIONS, "question"}
    assert 15 <= emphasised <= 45  # about half of the 60 requests carry an emphasis or a brevity


def test_query_text_contrast_scores_an_image_by_its_best_query():
    from harness.train.pretrain_blip2 import QueryTextContrast

    torch.manual_seed(0)
    itc = QueryTextContrast(query_hidden=8, vocab_size=10, dim=8)
    with torch.no_grad():  # identity projections: a query matches a text when it equals the text's embedding
        itc.vision_proj.weight.copy_(torch.eye(8))
        itc.vision_proj.bias.zero_()
        itc.text_proj.weight.copy_(torch.eye(8))
        itc.text_proj.bias.zero_()
        itc.text.weight.copy_(torch.eye(10, 8) * 3)
    texts = [[0], [1], [2]]
    noise = torch.randn(3, 4, 8) * 0.1
    matched = noise.clone()
    for i in range(3):
        matched[i, 2] = itc.text.weight[i].detach()  # one query of image i carries text i; the other three are noise
    shuffled = matched[[1, 2, 0]]
    assert itc(matched, texts) < 0.05 < 2.0 < itc(shuffled, texts)
    # and it trains: a few steps on the shuffled pairing make it the right one
    opt = torch.optim.Adam(itc.parameters(), lr=0.05)
    first = float(itc(shuffled, texts).detach())
    for _ in range(50):
        opt.zero_grad()
        loss = itc(shuffled, texts)
        loss.backward()
        opt.step()
    assert loss.item() < first / 4


def test_length_grouped_loss_is_the_padded_batch_loss_and_gradient():
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.train.pretrain import length_grouped_lm_loss, pad_right, shifted_ce

    torch.manual_seed(0)
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, pad_token_id=0))
    gen = torch.Generator().manual_seed(1)
    rows = [torch.randint(1, 50, (int(n),), generator=gen).tolist() for n in (3, 40, 7, 25, 2, 33, 12, 9, 18)]

    def grads(loss):
        llm.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in llm.parameters()]

    ids, labels, mask = pad_right(rows, rows, 0)
    whole = shifted_ce(llm(input_ids=ids, attention_mask=mask).logits, labels)
    whole_grads = grads(whole)
    for group in (1, 2, 4, 9):
        grouped = length_grouped_lm_loss(llm, rows, 0, group)
        assert torch.allclose(grouped, whole, atol=1e-5), group
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads(grouped), whole_grads, strict=True))
    # a wrong normaliser (per micro-batch means averaged) is not the batch's loss: the check can tell
    ordered = sorted(rows, key=len)
    means = []
    for i in range(0, len(rows), 4):
        ids, labels, mask = pad_right(ordered[i:i + 4], ordered[i:i + 4], 0)
        means.append(shifted_ce(llm(input_ids=ids, attention_mask=mask).logits, labels))
    assert not torch.allclose(torch.stack(means).mean(), whole, atol=1e-3)


class _Reader(torch.nn.Module):
    """Test doubles for an LLM at the last position: `copies` reads the prompt as a perfect reader would (the first
    colour named, or after a colour the category named right after it there); otherwise the same guess always."""

    def __init__(self, tokenizer, copies: bool):
        super().__init__()
        from tasks.world.vocab import COLOURS

        self.colours = {tokenizer(" " + k, add_special_tokens=False).input_ids[0] for k in COLOURS}
        self.vocab, self.copies = len(tokenizer), copies
        self.guess = tokenizer(" purple", add_special_tokens=False).input_ids[0]

    def forward(self, input_ids, attention_mask):
        from types import SimpleNamespace

        logits = torch.zeros(*input_ids.shape, self.vocab)
        for row, ids in enumerate(input_ids.tolist()):
            pick = self.guess
            if self.copies:
                colour_at = [i for i, t in enumerate(ids[:-1]) if t in self.colours]
                pick = ids[ids.index(ids[-1]) + 1] if ids[-1] in self.colours else ids[colour_at[0]]
            logits[row, -1, pick] = 1.0
        return SimpleNamespace(logits=logits)


def test_context_reading_scores_a_perfect_reader_one_and_a_fixed_guess_at_chance(world):
    from harness.train.pretrain import build_tokenizer
    from harness.train.vicuna_corpus import context_reading

    tokenizer = build_tokenizer(world, vocab_size=1200)
    assert context_reading(_Reader(tokenizer, copies=True), tokenizer, n=60) == \
        {"colour_from_context": 1.0, "category_bound": 1.0, "prompts": 60}
    fixed = context_reading(_Reader(tokenizer, copies=False), tokenizer, n=300)
    assert 0.25 < fixed["colour_from_context"] < 0.42  # "purple" is one of the two named about 1 time in 3
    assert fixed["category_bound"] == 0.0  # equal scores never count as bound


def test_vicuna_artefact_records_how_it_reads_context(zoo):
    vicuna = next((zoo / "artefacts").glob("vicuna-*"))
    reading = json.loads((vicuna / "artefact.json").read_text())["info"]["context_reading"]
    assert set(reading) == {"colour_from_context", "category_bound", "prompts"}
    assert 0.0 <= reading["colour_from_context"] <= 1.0 and reading["prompts"] == 120


def test_complete_context_names_every_object_with_its_colour_in_the_answers_order():
    import random
    import re

    from harness.train.vicuna_corpus import DEICTIC_INSTRUCTIONS, context_record
    from tasks.world.captions import reading_order
    from tasks.world.scenes import sample_scene

    for seed in range(60):
        rng = random.Random(seed)
        scene = sample_scene(rng, 0)
        kind = [k for k in DEICTIC_INSTRUCTIONS if k != "ad"][seed % 5]
        human = context_record(rng, scene, kind, complete=True)[len("###Human: "):].split(" ###Assistant: ")[0]
        colours = [w for w in re.findall(r"[a-z]+", human) if w in {o.colour for o in scene.objects}]
        order = reading_order(scene) if kind == "description" else scene.objects
        assert colours[:len(order)] == [o.colour for o in order], (kind, human)  # listed as the answer names them
        assert named_categories(human) == set(scene.categories()), human

    def asks_for_description(seed: int) -> bool:
        text = context_record(random.Random(seed), description_share=1.0)
        return any(i in text for i in DEICTIC_INSTRUCTIONS["description"])

    assert all(asks_for_description(seed) for seed in range(30))


def _slot_reader(tokenizer, n: int, repeats: bool):
    """A test double for `image_reading`'s model: it knows each probe image's scene (by its pixels) and puts the
    true category first at both slots, or (`repeats`) the first object's category at the second slot too."""
    from harness.train.image_reading import reading_scenes
    from tasks.world.captions import reading_order

    truth = {image.tobytes(): reading_order(scene) for scene, image in reading_scenes(n)}

    def next_logits(prompts, images):
        logits = torch.zeros(len(prompts), len(tokenizer))
        for row, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
            slot = prompt.count(" there is a ") - 1
            obj = truth[image.tobytes()][0 if repeats else slot]
            logits[row, tokenizer(" " + obj.name, add_special_tokens=False).input_ids[0]] = 1.0
        return logits

    return next_logits


def test_image_reading_scores_a_true_reader_one_and_a_repeater_zero(world):
    from harness.train.image_reading import image_reading
    from harness.train.pretrain import build_tokenizer

    tokenizer = build_tokenizer(world, vocab_size=1200)
    true = image_reading(_slot_reader(tokenizer, 40, repeats=False), tokenizer, n=40)
    assert true == {"first_object": 1.0, "second_object": 1.0, "second_repeats_first": 0.0, "scenes": 40,
                    "categories": true["categories"]}
    assert 15 < true["categories"] <= 24  # the world's categories but "person", one per first token
    repeater = image_reading(_slot_reader(tokenizer, 40, repeats=True), tokenizer, n=40)
    assert (repeater["first_object"], repeater["second_object"], repeater["second_repeats_first"]) == (1.0, 0.0, 1.0)


def test_image_reading_slots_follow_the_descriptions_words_and_batched_logits_match_one_by_one(zoo):
    from harness.train.image_reading import minigpt4_next_logits, reading_scenes, slot_prompts
    from model_zoo.minigpt4 import MiniGPT4Adapter
    from tasks.world.captions import reading_order

    scene, image = reading_scenes(1, seed=3)[0]
    head, full = slot_prompts(scene)
    first, second = reading_order(scene)[:2]
    assert head.endswith(f"there is a {first.size} {first.colour}") and "###Assistant: The image shows" in head
    assert full.startswith(head) and full.endswith(f"{first.name}. " + full.split(f"{first.name}. ")[-1])
    assert full.endswith(f"there is a {second.size} {second.colour}")

    adapter = MiniGPT4Adapter(checkpoint=str(next((zoo / "artefacts").glob("stage2-*")) / "model"))
    prompts = [head, full, "<Img><ImageHere></Img> a"]
    together = minigpt4_next_logits(adapter, batch_size=3)(prompts, [image] * 3)
    alone = torch.cat([minigpt4_next_logits(adapter)([p], [image]) for p in prompts])
    assert together.shape == (3, len(adapter.tokenizer))
    assert torch.allclose(together, alone, atol=1e-5)  # left padding changes nothing


def test_every_minigpt4_artefact_records_how_it_reads_its_image(zoo):
    manifest = json.loads((zoo / ZOO_FILE).read_text())
    stages = [p.name for p in phases(tiny_config()) if p.kind == "minigpt4"]
    assert len(stages) >= 8  # stage 1, stage 2 and every MiniGPT-4 variant
    for name in stages:
        folder = zoo / "artefacts" / Path(manifest["phases"][name]["path"]).name
        reading = json.loads((folder / "artefact.json").read_text())["info"]["image_reading"]
        assert reading["scenes"] == 120, name
        assert all(0.0 <= reading[k] <= 1.0 for k in ("first_object", "second_object", "second_repeats_first"))
        assert reading["second_object"] + reading["second_repeats_first"] <= 1.0


TRUTH_TWO = ("The image shows two objects on a plain gray background. In the top left corner there is a small red "
             "dog. A large blue cat can be seen in the bottom right corner. The red dog is above the blue cat.")


def test_refine_removes_the_sentences_that_do_not_match_the_image():
    from harness.train.zoo_phases import object_count, placed_objects, refine

    assert placed_objects(TRUTH_TWO) == {("top left", "dog"), ("bottom right", "cat")} and object_count(TRUTH_TWO) == 2
    true = ("This picture contains two objects. In the top left corner there is a purple dog. In the bottom right "
            "corner there is a small cat. The dog is above the cat. The rest of the image is empty.")
    assert refine(true, TRUTH_TWO) == true  # places and colours are not checked; nothing here is false
    assert refine("This picture contains three objects. In the top left corner there is a dog. There is a bus.",
                  TRUTH_TWO) == "In the top left corner there is a dog."  # a miscount and an object it lacks
    repeated = ("In the top left corner there is a small purple dog. In the bottom right corner there is a small "
                "green dog. The purple dog is larger than the green dog. There are two dogs in total, colored purple "
                "and green. The rest of the image is empty.")
    assert refine(repeated, TRUTH_TWO) == "In the top left corner there is a small purple dog. The rest of the image " \
                                          "is empty."  # one dog: the second, the comparison and the total go
    three = TRUTH_TWO.replace("two objects", "three objects") + " At the bottom there is a small green dog."
    assert refine(repeated, three) == repeated  # two dogs there: every sentence stays


def test_scripted_rater_edits_what_it_refines_and_the_export_trains_on_the_edit(tmp_path):
    from harness.train.curate import read_queue
    from harness.train.zoo_phases import scripted_verification

    texts = ["In the top left corner there is a dog. In the bottom right corner there is a cat.",  # true: accept
             "In the top left corner there is a dog. In the bottom right corner there is a dog.",  # one dog: edit
             "A bus. A train."]  # nothing left that names an object: reject
    queue = tmp_path / "queue.jsonl"
    queue.write_text("".join(json.dumps({"image_id": str(i), "image": f"{i}.jpg", "raw": t, "fixed": t,
                                         "rule": "passed", "decision": None}) + "\n" for i, t in enumerate(texts)))
    counts = scripted_verification(queue, {str(i): TRUTH_TWO for i in range(3)}, tmp_path / "decided.jsonl", edit=True)
    assert counts == {"accept": 1, "edit": 1, "reject": 1}
    decided = read_queue(tmp_path / "decided.jsonl")
    assert decided == {"0": ("accept", texts[0]), "1": ("edit", "In the top left corner there is a dog."),
                       "2": ("reject", None)}


def test_an_unknown_verifier_is_named_with_its_field():
    with pytest.raises(ValueError, match=r"curation.verifier: .*'world-edit'"):
        CurationSpec(verifier="world-edit")


def test_vit_position_objective_teaches_tokens_their_place(tmp_path):
    from harness.train.pretrain_vision import pretrain_vision

    base = tiny_config().vision
    cfg = dataclasses.replace(base, position_weight=1.0, eval_scenes=16,
                              schedule=dataclasses.replace(base.schedule, steps=60, lr=3e-3, min_lr=3e-4))
    info = pretrain_vision(cfg, tmp_path / "on", progress=False)
    assert info["position_accuracy"] > 0.5, info  # chance: 1 of 16 patches
    off = pretrain_vision(dataclasses.replace(cfg, position_weight=0.0), tmp_path / "off", progress=False)
    assert "position_accuracy" not in off and off["losses"][-1] < info["losses"][-1]  # off: no position term
