"""BLIP-2 adapter on tiny random models, OPT and FlanT5: prompts, batching, scoring, checkpoints, the runner."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Blip2Processor

from harness.config import RunConfig
from harness.registry import MODELS
from harness.runner import Runner
from harness.types import GenerationSettings, Request
from model_zoo.blip2 import Blip2Adapter, prompt_text, until_finished
from model_zoo.generation import cut_at_stop
from model_zoo.minigpt4 import weights_digest
from model_zoo.tiny_blip2 import TinyBlip2, TinyBlip2FlanT5

LANGUAGE_MODELS = ("opt", "t5")
PROMPTS = ("", "What colour is the shape?", "Question: is it red? Answer:",
           "Please tell me the colour of the object you can see in the centre of this small image.", "Describe it.")
CHOICES = (("red", "green"), ("blue", "yellow", "purple sky"), ("orange", "a big red square", "grey", "white"),
           ("black", "red dog"), ("green", "blue"))


def images(n: int) -> list[Image.Image]:
    """Different images of different sizes (the processor resizes them all)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32 + 4 * i, 40 - 2 * i, 3), dtype=np.uint8)) for i in range(n)]


def requests(settings: GenerationSettings | None = None) -> list[Request]:
    settings = settings or GenerationSettings(max_new_tokens=12)
    return [Request("t", str(i), p, settings=settings, choices=c)
            for i, (p, c) in enumerate(zip(PROMPTS, CHOICES, strict=True))]


def sharpened(language_model: str) -> Blip2Adapter:
    """A tiny model whose greedy outputs depend on the input: random heads give near-flat logits otherwise."""
    adapter = Blip2Adapter(tiny=True, language_model=language_model)
    adapter.model.language_model.get_output_embeddings().weight.data *= 50
    return adapter


# ----- prompts and inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize(("prompt", "text"), [
    ("", ""), ("   ", ""),  # captioning: no prompt at all
    ("What colour is it?", "Question: What colour is it? Answer:"),
    ("Question: what is it? Answer:", "Question: what is it? Answer:"),  # already in the template
    ("Describe the image. Answer: ", "Describe the image. Answer:"),
])
def test_prompt_text(prompt, text):
    assert prompt_text(prompt) == text


@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_input_ids_are_32_image_tokens_then_the_templated_prompt(language_model):
    adapter = Blip2Adapter(tiny=True, language_model=language_model)
    tok = adapter.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    assert image_id == adapter.model.config.image_token_index
    for prompt, text in [("", ""), ("What colour is the shape?", "Question: What colour is the shape? Answer:")]:
        ids = adapter.input_ids(Request("t", "0", prompt))
        assert ids[:32] == [image_id] * 32 and ids.count(image_id) == 32
        assert ids[32:] == tok(text).input_ids
        assert tok.decode(ids[32:], skip_special_tokens=True) == text
        if language_model == "opt":  # OPT: BOS in front of the text (alone, for captioning)
            assert ids[32] == tok.bos_token_id and ids[-1] != tok.eos_token_id
        else:  # T5: EOS at the end
            assert ids[-1] == tok.eos_token_id and tok.bos_token_id not in ids
        # transformers' own processor builds the same row (one row: no padding to place)
        processor = Blip2Processor(adapter.processor, copy.deepcopy(tok), num_query_tokens=32)
        assert processor(images=images(1), text=text)["input_ids"][0] == ids


def test_opt_captioning_is_transformers_default_start():
    """With no input_ids, Blip2ForConditionalGeneration starts OPT from 32 image tokens + BOS: our empty prompt."""
    adapter = sharpened("opt")
    settings = GenerationSettings(max_new_tokens=8)
    pixels = adapter.pixel_values(images(1))
    ours = adapter.generate_tokens([adapter.input_ids(Request("t", "0", ""))], pixels, settings)[0]
    theirs = adapter.model.generate(pixel_values=pixels, max_new_tokens=8, do_sample=False,
                                    eos_token_id=adapter.eos_ids, pad_token_id=adapter.tokenizer.pad_token_id)
    assert ours == until_finished(theirs[0, 33:].tolist(), adapter.eos_ids, adapter.tokenizer.pad_token_id)


# ----- generation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_batched_generation_equals_unbatched(language_model):
    adapter = sharpened(language_model)
    reqs, imgs = requests(), images(len(PROMPTS))
    rows = [adapter.input_ids(r) for r in reqs]
    settings = reqs[0].settings
    batched = adapter.generate_tokens(rows, adapter.pixel_values(imgs), settings)
    alone = [adapter.generate_tokens([row], adapter.pixel_values([img]), settings)[0]
             for row, img in zip(rows, imgs, strict=True)]
    assert batched == alone  # token for token
    assert len({tuple(t) for t in batched}) == len(batched)  # the rows really differ: the test means something
    responses = adapter.generate(reqs, imgs)
    assert [r.text for r in responses] == [adapter.generate([q], [i])[0].text for q, i in zip(reqs, imgs, strict=True)]
    for resp, row, tokens in zip(responses, rows, batched, strict=True):
        assert resp.ok and resp.text == resp.text.strip()
        assert resp.prompt_tokens == len(row) and resp.completion_tokens == len(tokens) <= 12
        assert resp.latency_s > 0


@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_stop_string_ends_its_own_row_only(language_model):
    adapter = sharpened(language_model)
    reqs, imgs = requests(), images(len(PROMPTS))
    free = adapter.generate(reqs, imgs)
    tokens = adapter.generate_tokens([adapter.input_ids(reqs[1])], adapter.pixel_values(imgs[1:2]), reqs[1].settings)[0]
    # a plain word that row 1 writes after a few tokens
    stop = next(s for s in (adapter.tokenizer.decode([t]) for t in tokens[2:]) if s.strip().isalpha())
    settings = GenerationSettings(max_new_tokens=12, stop=(stop,))
    stopped_reqs = [Request(r.task, r.sample_id, r.prompt, settings=settings) for r in reqs]
    stopped = adapter.generate(stopped_reqs, imgs)
    assert stopped[1].text == cut_at_stop(free[1].text, [stop])
    assert stopped[1].completion_tokens < free[1].completion_tokens
    assert [r.text for r in stopped] == [adapter.generate([q], [i])[0].text
                                         for q, i in zip(stopped_reqs, imgs, strict=True)]


def test_until_finished_keeps_eos_and_drops_padding():
    assert until_finished([5, 6, 2, 3, 3], eos_ids=[2], pad_id=3) == [5, 6, 2]
    assert until_finished([5, 3, 6, 3, 3], eos_ids=[2], pad_id=3) == [5, 3, 6]  # a stop string ended it
    assert until_finished([5, 9, 7], eos_ids=[2, 9], pad_id=3) == [5, 9]


# ----- choice scoring ------------------------------------------------------------------------------------
def hand_score(adapter: Blip2Adapter, request: Request, image: Image.Image, choice: str) -> float:
    """log p(choice | image, prompt) from one plain forward pass of Blip2ForConditionalGeneration."""
    tok, pixels = adapter.tokenizer, adapter.pixel_values([image])
    text = prompt_text(request.prompt)
    if adapter.decoder_only:
        head, full = tok(text).input_ids, tok(f"{text} {choice}").input_ids
        assert full[: len(head)] == head
        ids = torch.tensor([[adapter.model.config.image_token_index] * 32 + full])
        logprobs = torch.log_softmax(adapter.model(pixel_values=pixels, input_ids=ids).logits[0], dim=-1)
        start = 32 + len(head)
        return sum(float(logprobs[p - 1, ids[0, p]]) for p in range(start, ids.shape[1]))
    labels = tok(choice).input_ids
    assert labels[-1] == tok.eos_token_id
    ids = torch.tensor([adapter.input_ids(request)])
    logits = adapter.model(pixel_values=pixels, input_ids=ids, labels=torch.tensor([labels])).logits[0]
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(float(logprobs[i, t]) for i, t in enumerate(labels))


@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_score_choices_batched_equals_unbatched_and_hand_computation(language_model):
    adapter = Blip2Adapter(tiny=True, language_model=language_model)
    reqs, imgs = requests(), images(len(PROMPTS))
    batched = adapter.score_choices(reqs, imgs)
    alone = [adapter.score_choices([r], [i])[0] for r, i in zip(reqs, imgs, strict=True)]
    for b, a, req in zip(batched, alone, reqs, strict=True):
        assert len(b.choice_logprobs) == len(req.choices)
        assert np.allclose(b.choice_logprobs, a.choice_logprobs, atol=1e-4, rtol=0)
    with torch.no_grad():
        by_hand = [hand_score(adapter, reqs[2], imgs[2], c) for c in reqs[2].choices]
    assert np.allclose(batched[2].choice_logprobs, by_hand, atol=1e-4, rtol=0)
    assert len(set(batched[2].choice_logprobs)) == len(by_hand)


# ----- checkpoints and fingerprints ----------------------------------------------------------------------
@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_checkpoint_folder_round_trip(tmp_path, language_model):
    adapter = sharpened(language_model)
    folder = tmp_path / "blip2"
    adapter.model.save_pretrained(folder)  # the layout of a Hugging Face BLIP-2 folder
    Blip2Processor(adapter.processor, copy.deepcopy(adapter.tokenizer), num_query_tokens=32).save_pretrained(folder)
    loaded = Blip2Adapter(checkpoint=str(folder))
    assert loaded.decoder_only == (language_model == "opt")
    assert loaded.fingerprint() == adapter.fingerprint()
    reqs, imgs = requests(), images(len(PROMPTS))
    assert [r.text for r in loaded.generate(reqs, imgs)] == [r.text for r in adapter.generate(reqs, imgs)]
    assert [r.choice_logprobs for r in loaded.score_choices(reqs, imgs)] == \
        [r.choice_logprobs for r in adapter.score_choices(reqs, imgs)]
    with torch.no_grad():  # BLIP-2 FT: another checkpoint of the same architecture
        loaded.model.language_projection.bias[0] += 1e-3
    loaded.save(str(tmp_path / "ft"))
    assert Blip2Adapter(checkpoint=str(tmp_path / "ft")).fingerprint() != adapter.fingerprint()


def test_fingerprint_follows_weights_dtype_and_language_model():
    base = Blip2Adapter(tiny=True).fingerprint()
    assert Blip2Adapter(tiny=True).fingerprint() == base
    others = [Blip2Adapter(tiny=True, seed=1), Blip2Adapter(tiny=True, dtype="bfloat16"),
              Blip2Adapter(tiny=True, language_model="t5")]
    assert len({base, *(o.fingerprint() for o in others)}) == 4


def test_registered_tiny_classes_are_the_tiny_models():
    for cls, language_model in ((TinyBlip2, "opt"), (TinyBlip2FlanT5, "t5")):
        adapter, plain = cls(), Blip2Adapter(tiny=True, language_model=language_model)
        assert adapter.decoder_only == (language_model == "opt")
        assert weights_digest(adapter.model) == weights_digest(plain.model)


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="checkpoint=DIR"):
        Blip2Adapter()
    with pytest.raises(ValueError, match="unknown BLIP-2 language model"):
        Blip2Adapter(tiny=True, language_model="llama")
    with pytest.raises(ValueError, match="needs an image"):
        Blip2Adapter(tiny=True).generate(requests()[:1], [None])


# ----- end to end ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("language_model", LANGUAGE_MODELS)
def test_runner_end_to_end(tmp_path, monkeypatch, language_model):
    monkeypatch.setitem(MODELS._entries, "blip2-test", "model_zoo.blip2:Blip2Adapter")
    options = {"blip2-test": {"tiny": True, "language_model": language_model}}
    result = Runner(RunConfig(models=("blip2-test",), tasks=("smoke_colours", "smoke_colours_mc"), limit=8,
                              store=str(tmp_path / "s.sqlite"), progress=False, model_options=options)).run()
    assert [(p.task, p.generated, p.errors) for p in result.pairs] == [("smoke_colours", 8, 0),
                                                                       ("smoke_colours_mc", 8, 0)]
