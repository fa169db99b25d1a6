"""MiniGPT-4 adapter on tiny random models: batching, splicing, stopping, checkpoints, fingerprints."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from harness.types import GenerationSettings, Request
from model_zoo import checkpoints
from model_zoo.minigpt4 import IMAGE_PLACEHOLDER, MiniGPT4Adapter, conversation_v0
from model_zoo.tiny import VARIANTS, tiny_tokenizer
from model_zoo.tokenizer import stop_tokenisations


def images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40 + 7 * i, 36), ((53 * i) % 256, (97 * i + 40) % 256, (31 * i + 90) % 256))
            for i in range(n)]


def requests(n: int, max_new_tokens: int = 10, choices: tuple[str, ...] = ()) -> list[Request]:
    return [Request(task="t", sample_id=str(i), prompt="Describe this image" + " in great detail" * (i % 4),
                    settings=GenerationSettings(max_new_tokens=max_new_tokens), choices=choices) for i in range(n)]


def peaky(adapter: MiniGPT4Adapter, scale: float = 40.0) -> MiniGPT4Adapter:
    """Sharpen a random model's logits so greedy outputs depend on the input and differ between rows."""
    with torch.no_grad():
        adapter.model.llm.lm_head.weight.mul_(scale)
    adapter._fingerprint = None
    return adapter


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_generation_equals_unbatched_token_for_token(variant):
    adapter = peaky(MiniGPT4Adapter(tiny=True, variant=variant, seed=1))
    reqs, imgs = requests(6), images(6)
    batched = adapter.generate(reqs, imgs)
    single = [adapter.generate([r], [i])[0] for r, i in zip(reqs, imgs, strict=True)]
    assert [(b.text, b.completion_tokens) for b in batched] == [(s.text, s.completion_tokens) for s in single]
    assert len({b.text for b in batched}) > 1, "rows should differ, or the comparison proves little"


def test_image_embeddings_sit_exactly_where_the_placeholder_was():
    adapter = MiniGPT4Adapter(tiny=True)
    model, tok = adapter.model, adapter.tokenizer
    prompt = conversation_v0("What is this?")
    pixels = adapter.processor(images(1), return_tensors="pt")["pixel_values"]
    image_embeds = model.encode_images(pixels)[0]
    assert image_embeds.shape == (32, model.llm.config.hidden_size)
    spliced = model.embed_prompt(prompt, image_embeds, tok)

    # Step by step, as the paper says: split at the placeholder, BOS on the first piece only.
    before, after = prompt.split(IMAGE_PLACEHOLDER)
    assert before.endswith("<Img>") and after.startswith("</Img>")
    ids_before = [tok.bos_token_id] + tok(before, add_special_tokens=False).input_ids
    ids_after = tok(after, add_special_tokens=False).input_ids
    assert tok.bos_token_id not in ids_after
    table = model.llm.get_input_embeddings().weight
    expected = torch.cat([table[ids_before], image_embeds, table[ids_after]])
    torch.testing.assert_close(spliced, expected, rtol=0, atol=0)
    start = len(ids_before)
    torch.testing.assert_close(spliced[start:start + 32], image_embeds, rtol=0, atol=0)
    with pytest.raises(ValueError, match="exactly one <ImageHere>"):
        model.embed_prompt("no image here", image_embeds, tok)


def test_no_qformer_variant_maps_every_vit_token():
    adapter = MiniGPT4Adapter(tiny=True, variant="no-qformer")
    pixels = adapter.processor(images(2), return_tensors="pt")["pixel_values"]
    patches = (adapter.model.config.image_size // adapter.model.config.vision["patch_size"]) ** 2
    assert adapter.model.encode_images(pixels).shape == (2, patches + 1, adapter.model.llm.config.hidden_size)


def chain_model(chains: dict[str, str]) -> MiniGPT4Adapter:
    """A real tiny LLaMA whose attention and MLP outputs are zeroed, so the next token depends only on the
    current one; lm_head rows are set so that token a is followed by token b for each chain pair."""
    adapter = MiniGPT4Adapter(tiny=True, seed=3)
    llm, tok = adapter.model.llm, adapter.tokenizer
    with torch.no_grad():
        for layer in llm.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        llm.model.norm.weight.fill_(1.0)
        llm.lm_head.weight.zero_()
        emb = llm.get_input_embeddings().weight
        for a, b in chains.items():
            ia, ib = tok.convert_tokens_to_ids(a), tok.convert_tokens_to_ids(b)
            assert tok.unk_token_id not in (ia, ib), (a, b)
            llm.lm_head.weight[ib] += 200 * emb[ia] / emb[ia].norm()
    return adapter


def test_each_row_stops_on_its_own_at_the_separator():
    tok = tiny_tokenizer()
    assert stop_tokenisations(tok, "###"), "### must tokenise somehow"
    # row 0 ends in " red": red -> dog -> ### (stops). row 1 ends in " the": the -> image -> the ... (never stops)
    adapter = chain_model({"Ġred": "Ġdog", "Ġdog": "###", "Ġthe": "Ġimage", "Ġimage": "Ġthe"})
    reqs = [Request(task="t", sample_id=str(i), prompt=f"<Img>{IMAGE_PLACEHOLDER}</Img> {word}",
                    settings=GenerationSettings(max_new_tokens=8)) for i, word in enumerate(["red", "the"])]
    batched = adapter.generate(reqs, images(2))
    assert batched[0].text == "dog" and batched[0].completion_tokens == 2  # stopped at ###, cut before it
    assert batched[1].text == "image the image the image the image the" and batched[1].completion_tokens == 8
    single = [adapter.generate([r], [i])[0] for r, i in zip(reqs, images(2), strict=True)]
    assert [(b.text, b.completion_tokens) for b in batched] == [(s.text, s.completion_tokens) for s in single]


def test_score_choices_batched_equals_unbatched_and_a_hand_computation():
    adapter = peaky(MiniGPT4Adapter(tiny=True, seed=2), scale=5.0)
    choices = ("red", "dark blue", "a green square")
    reqs, imgs = requests(5, choices=choices), images(5)
    batched = adapter.score_choices(reqs, imgs)
    single = [adapter.score_choices([r], [i])[0] for r, i in zip(reqs, imgs, strict=True)]
    for b, s in zip(batched, single, strict=True):
        assert b.choice_logprobs == pytest.approx(s.choice_logprobs, abs=1e-4)
    # by hand for row 0, choice 1: one unpadded forward pass over prompt + choice tokens
    prefix = adapter.prompt_embeddings(reqs[:1], imgs[:1])[0]
    ids = adapter._choice_ids(conversation_v0(reqs[0].prompt), choices[1])
    with torch.no_grad():
        embeds = torch.cat([prefix, adapter.model.llm.get_input_embeddings()(ids)])[None]
        logprobs = torch.log_softmax(adapter.model.llm(inputs_embeds=embeds).logits[0].float(), -1)
    by_hand = sum(float(logprobs[prefix.shape[0] - 1 + k, t]) for k, t in enumerate(ids.tolist()))
    assert batched[0].choice_logprobs[1] == pytest.approx(by_hand, abs=1e-4)


def test_official_pth_layout_loads_and_reproduces_logits(tmp_path):
    source = MiniGPT4Adapter(tiny=True, seed=5)
    target = MiniGPT4Adapter(tiny=True, seed=5)
    with torch.no_grad():
        target.model.llama_proj.weight.normal_()  # different projection until the checkpoint is loaded
    proj = source.model.llama_proj
    path = tmp_path / "pretrained_minigpt4.pth"
    torch.save({"model": {"llama_proj.weight": proj.weight.clone(), "llama_proj.bias": proj.bias.clone(),
                          "some_buffer": torch.zeros(3)}, "optimizer": None}, path)
    report = checkpoints.load_official_projection(target.model, path)
    assert sorted(report.loaded) == ["llama_proj.bias", "llama_proj.weight"]
    assert report.unexpected == ["some_buffer"] and report.missing == []
    pixels = source.processor(images(2), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(target.model.encode_images(pixels), source.model.encode_images(pixels))
    with torch.no_grad():
        ours = target.model.llm(inputs_embeds=target.prompt_embeddings(requests(1), images(1))[0][None]).logits
        theirs = source.model.llm(inputs_embeds=source.prompt_embeddings(requests(1), images(1))[0][None]).logits
    torch.testing.assert_close(ours, theirs)

    torch.save({"model": {"llama_proj.weight": proj.weight.clone()}}, path)
    assert checkpoints.load_official_projection(target.model, path).missing == ["llama_proj.bias"]
    torch.save({"model": {"llama_proj.weight": torch.zeros(7, 32)}}, path)
    with pytest.raises(checkpoints.CheckpointError, match=r"'llama_proj.weight' has shape \(7, 32\) .* \(64, 32\)"):
        checkpoints.load_official_projection(target.model, path)
    torch.save({"state": {}}, path)
    with pytest.raises(checkpoints.CheckpointError, match="'model' state dict"):
        checkpoints.load_official_projection(target.model, path)


@pytest.mark.parametrize("variant", ["3-layers", "lora"])
def test_own_checkpoint_round_trip_keeps_fingerprint_and_outputs(tmp_path, variant):
    adapter = peaky(MiniGPT4Adapter(tiny=True, seed=7, variant=variant))
    checkpoints.save_minigpt4(adapter.model, adapter.tokenizer, tmp_path / "ckpt")
    loaded = MiniGPT4Adapter(checkpoint=str(tmp_path / "ckpt"))
    assert loaded.fingerprint() == adapter.fingerprint()
    assert [r.text for r in loaded.generate(requests(3), images(3))] == \
        [r.text for r in adapter.generate(requests(3), images(3))]


def test_fingerprint_changes_with_weights_dtype_and_variant():
    a, b = MiniGPT4Adapter(tiny=True, seed=0), MiniGPT4Adapter(tiny=True, seed=0)
    assert a.fingerprint() == b.fingerprint()
    assert MiniGPT4Adapter(tiny=True, seed=1).fingerprint() != a.fingerprint()
    assert MiniGPT4Adapter(tiny=True, seed=0, variant="no-qformer").fingerprint() != a.fingerprint()
    assert MiniGPT4Adapter(tiny=True, seed=0, variant="lora").fingerprint() != a.fingerprint()
    assert MiniGPT4Adapter(tiny=True, seed=0, dtype="bfloat16").fingerprint() != a.fingerprint()
    with torch.no_grad():
        b.model.llama_proj.bias[0] += 1e-3
    b._fingerprint = None
    assert b.fingerprint() != a.fingerprint()


def test_real_layout_folders_assemble_into_the_same_model(real_parts):
    """A BLIP-2 folder (vision + Q-Former + queries), a LLaMA folder and the official .pth, written by
    transformers/torch in their real formats, assemble into a MiniGPT-4 with the source's exact logits."""
    source, tmp_path = real_parts
    built = MiniGPT4Adapter(blip2=str(tmp_path / "blip2"), llm=str(tmp_path / "vicuna"),
                            projection=str(tmp_path / "proj.pth"))
    rows_src = source.prompt_embeddings(requests(2), images(2))
    rows_new = built.prompt_embeddings(requests(2), images(2))
    for a, b in zip(rows_src, rows_new, strict=True):
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(built.model.llm(inputs_embeds=b[None]).logits,
                                   source.model.llm(inputs_embeds=a[None]).logits)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_runs_end_to_end(dtype):
    adapter = MiniGPT4Adapter(tiny=True, dtype=dtype)
    assert {p.dtype for p in adapter.model.parameters()} == {getattr(torch, dtype)}
    out = adapter.generate(requests(3, max_new_tokens=4), images(3))
    assert all(r.error is None and r.completion_tokens >= 1 for r in out)
    scores = adapter.score_choices(requests(2, choices=("red", "blue")), images(2))
    assert all(len(s.choice_logprobs) == 2 and all(v < 0 for v in s.choice_logprobs) for s in scores)
