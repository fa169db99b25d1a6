"""The trainer: what each stage and variant may change, loss masks token by token, resume, and DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.train.batches import (
    IGNORE,
    STAGE2_INSTRUCTIONS,
    build_batch,
    process_stage1_caption,
    stage2_prompt,
    target_tokens,
)
from harness.train.data import Sample, prepare, step_indices
from harness.train.loop import TrainConfig, lr_at, train
from model_zoo import checkpoints
from model_zoo.minigpt4 import IMAGE_PLACEHOLDER
from model_zoo.tiny import tiny_minigpt4
from tasks.world import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


def config(world: Path, out: Path, stage: int = 1, **kw) -> TrainConfig:
    data = {1: ("pairs_jsonl", world / "stage1/pairs.jsonl"), 2: ("cc_sbu_align", world / "cc_sbu_align")}[stage]
    base = {"stage": stage, "data_kind": data[0], "data_path": str(data[1]), "out_dir": str(out), "steps": 2,
            "batch_size": 4, "checkpoint_every": 100, "progress": False, "lr": 1e-2, "warmup_steps": 1,
            "max_txt_len": 32 if stage == 1 else 160}
    return TrainConfig(**{**base, **kw})


VARIANTS = [  # (tiny variant, stage, config changes, what must train)
    ("minigpt4", 1, {}, {"llama_proj."}),
    ("minigpt4", 2, {}, {"llama_proj."}),
    ("no-qformer", 2, {}, {"llama_proj."}),
    ("3-layers", 1, {}, {"llama_proj."}),
    ("minigpt4", 2, {"train_qformer": True}, {"llama_proj.", "qformer.", "query_tokens"}),
    ("lora", 2, {"train_lora": True}, {"llama_proj.", "lora_"}),
]


@pytest.mark.parametrize(("variant", "stage", "changes", "trains"), VARIANTS)
def test_each_stage_and_variant_changes_only_what_it_should(world, tmp_path, variant, stage, changes, trains):
    model, tok = tiny_minigpt4(seed=0, variant=variant)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    summary = train(model, tok, config(world, tmp_path, stage, **changes))

    def should_train(name: str) -> bool:
        return any(name.startswith(t) or t in name for t in trains)

    assert set(summary["trainable"]) == {n for n in before if should_train(n)}
    for name, p in model.named_parameters():
        if should_train(name):
            assert not torch.equal(p, before[name]), f"{name} should have trained"
        else:
            assert torch.equal(p, before[name]), f"frozen {name} changed"
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), f"buffer {name} changed"


def test_stage1_loss_mask_token_by_token():
    model, tok = tiny_minigpt4(seed=0)
    images = torch.randn(2, 32, model.llm.config.hidden_size)
    targets = [process_stage1_caption("A red Dog: left of (a) cat!") + "\n", "a bus\n"]
    assert targets[0] == "a red dog left of a cat\n"
    batch = build_batch(model, tok, images, [IMAGE_PLACEHOLDER] * 2, targets, max_txt_len=32)
    for row, target in enumerate(targets):
        ids = tok(target, add_special_tokens=False).input_ids
        expected_labels = [IGNORE] + [IGNORE] * 32 + ids  # BOS, 32 image tokens: no loss; the caption: loss
        length = len(expected_labels)
        assert batch.labels[row, :length].tolist() == expected_labels
        assert (batch.labels[row, length:] == IGNORE).all()  # right padding
        assert batch.input_ids[row] == [tok.bos_token_id] + [None] * 32 + ids
        assert batch.attention_mask[row].tolist() == [1] * length + [0] * (batch.labels.shape[1] - length)
        # the image embeddings sit right after BOS
        torch.testing.assert_close(batch.inputs_embeds[row, 1:33], images[row], rtol=0, atol=0)
    assert target_tokens(batch) == sum(len(tok(t, add_special_tokens=False).input_ids) for t in targets)
    long = build_batch(model, tok, images[:1], [IMAGE_PLACEHOLDER], ["word " * 100], max_txt_len=32)
    assert (long.labels != IGNORE).sum() == 32  # max_txt_len cuts the target


def test_stage2_loss_mask_token_by_token():
    model, tok = tiny_minigpt4(seed=0)
    import random

    prompt = stage2_prompt(random.Random(3))
    assert prompt.startswith("###Human: <Img><ImageHere></Img> ") and prompt.endswith(" ###Assistant: ")
    assert prompt[len("###Human: "):-len(" ###Assistant: ")] in STAGE2_INSTRUCTIONS
    target = "A red dog sits left of a small cat.###"
    images = torch.randn(1, 32, model.llm.config.hidden_size)
    batch = build_batch(model, tok, images, [prompt], [target], max_txt_len=160)
    before, after = prompt.split(IMAGE_PLACEHOLDER)
    head = [tok.bos_token_id] + tok(before, add_special_tokens=False).input_ids
    tail = tok(after.rstrip(), add_special_tokens=False).input_ids  # "</Img> ... ###Assistant:"
    ids = tok(after + target, add_special_tokens=False).input_ids[len(tail):]
    assert batch.input_ids[0] == head + [None] * 32 + tail + ids
    assert batch.labels[0].tolist() == [IGNORE] * (len(head) + 32 + len(tail)) + ids
    # the template's trailing space is the answer's: its first token is " A" as in running text (what the model
    # generates after an evaluation prompt ending in "###Assistant:"), not a lone space and then "A"
    assert tok.decode(ids) == " " + target
    assert ids[0] == tok(" A", add_special_tokens=False).input_ids[0] != tok("A", add_special_tokens=False).input_ids[0]
    assert tok.decode(ids).endswith("###")  # the separator is part of the target: the model learns to stop


def test_data_order_and_schedule():
    first = step_indices(10, seed=1, step=0, batch_size=4)
    assert len(set(first)) == 4 and first == step_indices(10, seed=1, step=0, batch_size=4)
    epoch = [i for s in range(5) for i in step_indices(10, 1, s, 4)][:10]
    assert sorted(epoch) == list(range(10))  # one epoch sees every sample once
    cfg = TrainConfig(stage=1, data_kind="pairs_jsonl", data_path="x", out_dir="y", steps=100, lr=1e-4,
                      warmup_start_lr=1e-6, warmup_steps=10, min_lr=8e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-6) and lr_at(10, cfg) == pytest.approx(1e-4)
    assert lr_at(5, cfg) == pytest.approx(1e-6 + (1e-4 - 1e-6) / 2)
    assert lr_at(100, cfg) == pytest.approx(8e-5) and lr_at(55, cfg) == pytest.approx(9e-5)


TRAIN_ARGS = ["--stage", "1", "--init", "tiny:minigpt4", "--data-kind", "pairs_jsonl", "--batch-size", "4",
              "--lr", "0.01", "--warmup-steps", "1", "--no-progress"]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    model, _ = checkpoints.load_minigpt4(out / "final")
    return {n: p.detach() for n, p in model.named_parameters()}


def test_stage1_crop_follows_the_configured_scale(tmp_path):
    from PIL import Image

    path = tmp_path / "scene.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(path)
    sample = Sample(path, "a red square")
    paper = [prepare(sample, 1, 0, step, 0)[0].size for step in range(20)]
    assert all(w * h >= 0.5 * 64 * 64 - 64 and w * h <= 64 * 64 for w, h in paper)
    assert sum(size != (64, 64) for size in paper) >= 15  # the paper's 0.5-1 of the area: nearly always a crop
    assert {prepare(sample, 1, 0, step, 0, crop_min_scale=1.0)[0].size for step in range(20)} == {(64, 64)}
    image, prompt, target = prepare(sample, 2, 0, 0, 0, crop_min_scale=0.5)
    assert image.size == (64, 64) and target == "a red square###"  # stage 2 never crops


def test_killed_training_resumes_to_the_same_final_weights(world, tmp_path):
    args = [*TRAIN_ARGS, "--data", str(world / "stage1/pairs.jsonl"), "--steps", "8"]
    mgbench = [sys.executable, "-m", "harness.cli", "train"]
    subprocess.run([*mgbench, *args, "--out", str(tmp_path / "straight"), "--checkpoint-every", "100"],
                   check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*mgbench, *args, "--out", str(killed), "--checkpoint-every", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / "checkpoints").glob("step-0000004.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (killed / "final").exists()

    resumed = subprocess.run([*mgbench, *args, "--out", str(killed), "--checkpoint-every", "2"],
                             check=True, capture_output=True, text=True, timeout=300)
    assert '"resumed_from": ' in resumed.stdout and '"resumed_from": 0' not in resumed.stdout
    straight, again = final_weights(tmp_path / "straight"), final_weights(killed)
    for name, tensor in straight.items():
        assert torch.equal(again[name], tensor), name


def test_two_gloo_processes_train_like_one(world, tmp_path):
    """1 process vs 2 DDP processes (gloo) on the same global batches: same weights within 1e-6."""
    args = [*TRAIN_ARGS, "--data", str(world / "stage1/pairs.jsonl"), "--steps", "3", "--grad-accum", "2"]
    subprocess.run([sys.executable, "-m", "harness.cli", "train", *args, "--out", str(tmp_path / "one")],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "harness.cli", "train", *args, "--out", str(tmp_path / "two")],
                   check=True, capture_output=True, timeout=300, env=env)
    one, two = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    trained = [n for n in one if n.startswith("llama_proj.")]
    assert trained
    for name in trained:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-6)
        assert not torch.equal(one[name], tiny_minigpt4(seed=0)[0].state_dict()[name])  # it did train


def test_train_starts_from_real_parts_and_keeps_them_frozen(world, real_parts, tmp_path):
    """`mgbench train --blip2 DIR --llm DIR [--projection PTH]`: stage 1 from the real-format folders; every part
    but the projection comes out bit-identical to the folders, and --projection is where the projection starts."""
    from harness.cli import main

    source, parts = real_parts
    args = ["train", "--stage", "1", "--blip2", str(parts / "blip2"), "--llm", str(parts / "vicuna"),
            "--data-kind", "pairs_jsonl", "--data", str(world / "stage1/pairs.jsonl"), "--batch-size", "4",
            "--warmup-steps", "0", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "fresh"), "--steps", "2", "--lr", "0.01"]) == 0
    trained = final_weights(tmp_path / "fresh")
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(trained[name], tensor) != name.startswith("llama_proj."), name

    # lr 0: the projection stays where it started, the official file's
    assert main([*args, "--projection", str(parts / "proj.pth"), "--out", str(tmp_path / "pth"), "--steps", "1",
                 "--lr", "0", "--min-lr", "0"]) == 0
    started = final_weights(tmp_path / "pth")
    for name in ("llama_proj.weight", "llama_proj.bias"):
        assert torch.equal(started[name], source.model.state_dict()[name])


def test_train_parts_arguments_go_together(world, tmp_path, capsys):
    from harness.cli import main

    base = ["train", "--stage", "1", "--data-kind", "pairs_jsonl", "--data", str(world / "stage1/pairs.jsonl"),
            "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="--blip2 needs --llm"):
        main([*base, "--blip2", str(tmp_path)])
    with pytest.raises(SystemExit, match="go with --blip2"):
        main([*base, "--init", "tiny:minigpt4", "--llm", str(tmp_path)])


def test_half_precision_frozen_parts_need_a_gpu(world, tmp_path):
    with pytest.raises(ValueError, match="frozen_dtype"):
        config(world, tmp_path, frozen_dtype="float8")
    model, tok = tiny_minigpt4(seed=0)
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU refusal; on a GPU the real-size benchmark trains with float16 frozen parts")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        train(model, tok, config(world, tmp_path, frozen_dtype="float16"))
