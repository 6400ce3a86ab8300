"""GraftModel end to end on tiny random Whisper + Qwen2 / Llama / Qwen2-VL."""

import numpy as np
import pytest
import torch
from conftest import make_clips
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from audiograft.modeling.config import EncoderLoraSettings, GraftConfig, LoraSettings
from audiograft.modeling.model import (
    ENCODER_LORA_WEIGHTS,
    LORA_DIR,
    PROJECTOR_WEIGHTS,
    GraftModel,
)

FAMILIES = ["qwen2", "llama", "qwen2_vl"]


def build(base_models, family, **overrides) -> GraftModel:
    torch.manual_seed(0)
    config = GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models[family]), **overrides)
    return GraftModel.from_config(config).eval()


def greedy(model, clips, max_new_tokens=6, **kwargs):
    batch = model.processor(clips, **kwargs)
    return model.generate(**batch, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_backpropagates_only_into_trainable_parts(base_models, family):
    model = build(base_models, family)
    model.train()
    batch = model.processor(make_clips([1.0, 2.0]), answers=["hello world", "the lazy dog"])
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.llm.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_returns_new_tokens_and_batch_equals_single(base_models, family):
    model = build(base_models, family)
    clips = make_clips([0.7, 2.9, 1.6])
    batched = greedy(model, clips)
    assert batched.shape == (3, 6)
    for index, clip in enumerate(clips):
        assert torch.equal(greedy(model, [clip])[0], batched[index])


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_batch_equals_single(base_models, family):
    model = build(base_models, family)
    clips, answers = make_clips([0.5, 2.4]), ["the fox", "hello world again"]
    batch = model.processor(clips, answers=answers)
    del batch["labels"]  # logits at every position
    with torch.no_grad():
        logits = model(**batch).logits
        for index in range(2):
            single = model.processor([clips[index]], answers=[answers[index]])
            del single["labels"]
            alone = model(**single).logits[0]
            torch.testing.assert_close(logits[index, : alone.shape[0]], alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_different_audio_gives_different_output(base_models, family):
    model = build(base_models, family)
    low_tone, high_tone = make_clips([1.5, 1.5])
    with torch.no_grad():
        first = model(**model.processor([low_tone])).logits[0, -1]
        second = model(**model.processor([high_tone])).logits[0, -1]
        again = model(**model.processor([low_tone])).logits[0, -1]
    # A tiny random LLM barely moves its logits; unchanged audio gives bit-identical ones.
    assert torch.equal(first, again)
    assert (first - second).abs().max() > 1e-5


@pytest.mark.parametrize("projector", ["linear", "pool", "stack"])
def test_save_load_round_trip_writes_only_trained_weights(base_models, tmp_path, projector):
    model = build(base_models, "qwen2", projector=projector, downsample=1 if projector == "linear" else 3)
    model.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for parameter in model.llm.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.1)  # LoRA's B starts at zero; make the adapter matter
    clips = make_clips([1.2, 0.8])
    expected = greedy(model, clips)

    model.save_pretrained(tmp_path / "graft")
    saved = sorted(p.relative_to(tmp_path / "graft").as_posix() for p in (tmp_path / "graft").rglob("*") if p.is_file())
    assert PROJECTOR_WEIGHTS in saved and f"{LORA_DIR}/adapter_model.safetensors" in saved
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in saved)
    assert ENCODER_LORA_WEIGHTS not in saved  # a frozen encoder writes nothing of its own
    with safe_open(str(tmp_path / "graft" / PROJECTOR_WEIGHTS), "pt") as reader:
        assert set(reader.keys()) == set(model.projector.state_dict())

    restored = GraftModel.from_pretrained(tmp_path / "graft")
    assert restored.config == model.config
    assert torch.equal(greedy(restored, clips), expected)


def test_merge_writes_standalone_model_with_same_output(base_models, tmp_path):
    model = build(base_models, "llama")
    model.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for parameter in model.llm.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.1)
    merged = merged_with_same_logits(model, tmp_path)
    assert merged.config.lora is None and not (tmp_path / "merged" / LORA_DIR).exists()
    assert merged.config.encoder.endswith("encoder") and merged.config.llm.endswith("llm")


def merged_with_same_logits(model: GraftModel, tmp_path) -> GraftModel:
    """Save `model`, merge the saved graft into tmp_path/merged and load that; it must give `model`'s logits."""
    clips = make_clips([1.0, 2.0])
    with torch.no_grad():
        expected = model(**model.processor(clips)).logits
    model.save_pretrained(tmp_path / "graft")
    GraftModel.from_pretrained(tmp_path / "graft").merge(tmp_path / "merged")
    merged = GraftModel.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(merged(**merged.processor(clips)).logits, expected, atol=1e-4, rtol=1e-4)
    return merged


def test_lora_targets_the_llm_only_never_encoder_or_vision(base_models):
    model = build(base_models, "qwen2_vl", lora=LoraSettings(r=2, alpha=4))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    lora = {name for name in trainable if "lora_" in name}
    assert lora and all("language_model" in name for name in lora)
    assert not any(name.startswith("encoder.") or "visual" in name for name in trainable)
    assert trainable - lora == {name for name, _ in model.projector.named_parameters(prefix="projector")}


def test_vision_language_prompt_with_image_and_audio(base_models):
    model = build(base_models, "qwen2_vl")
    rng = np.random.default_rng(0)
    image_a = Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8))
    image_b = Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8))
    clip_a, clip_b = make_clips([1.0, 1.0])

    def last_logits(clip, image):
        batch = model.processor([clip], images=[[image]])
        assert "pixel_values" in batch and "image_grid_thw" in batch
        with torch.no_grad():
            return model(**batch).logits[0, -1]

    base = last_logits(clip_a, image_a)
    assert (last_logits(clip_a, image_b) - base).abs().max() > 1e-4  # the image matters
    assert (last_logits(clip_b, image_a) - base).abs().max() > 1e-4  # the audio matters
    generated = greedy(model, [clip_a, clip_b], images=[[image_a], [image_b]])
    assert generated.shape == (2, 6)
    assert torch.equal(greedy(model, [clip_b], images=[[image_b]])[0], generated[1])


def test_several_clips_in_one_prompt(base_models):
    model = build(base_models, "qwen2")
    first, second = make_clips([0.8, 1.4])
    batch = model.processor([[first, second], first])
    counts = model.processor.audio_token_counts(batch["feature_lengths"])
    assert len(counts) == 3 and batch["audio_mask"][0].sum() == counts[0] + counts[1]
    with torch.no_grad():
        both = model(**model.processor([[first, second]])).logits[0, -1]
        swapped = model(**model.processor([[second, first]])).logits[0, -1]
    assert (both - swapped).abs().max() > 1e-4


def test_transcribe_returns_text_per_clip(base_models):
    model = build(base_models, "qwen2")
    texts = model.transcribe(make_clips([0.5, 1.0]), max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_learns_to_stop_when_pad_token_is_eos(base_models, tmp_path):
    from conftest import EOS_ENDED_TEMPLATE, save_causal_lm

    from audiograft.bench.architectures import chatml_tokenizer

    llm_dir = save_causal_lm(tmp_path / "llm", "qwen2")
    tokenizer = chatml_tokenizer()
    tokenizer.chat_template = EOS_ENDED_TEMPLATE
    tokenizer.save_pretrained(llm_dir)
    torch.manual_seed(0)
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(llm_dir)))
    model.add_lora(LoraSettings(r=8, alpha=16, dropout=0.0))
    clips, answers = make_clips([1.0]), ["the lazy fox"]
    batch = model.processor(clips, answers=answers)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    generated = model.generate(**model.processor(clips), max_new_tokens=16)
    eos = tokenizer.eos_token_id
    for row, answer in zip(generated.tolist(), answers):
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        assert row[: len(answer_ids) + 1] == answer_ids + [eos]
    assert model.transcribe(clips) == answers


def test_generate_takes_already_encoded_audio_and_can_return_scores(base_models):
    from audiograft.modeling.model import answer_token_budget

    model = build(base_models, "qwen2")
    batch = model.processor(make_clips([0.7, 1.9]))
    expected = greedy(model, make_clips([0.7, 1.9]))
    encoded = model.encode_audio(batch.pop("input_features"), batch.pop("feature_lengths"))
    assert encoded[0].shape[-1] == 32 and encoded[1].tolist() == [35, 95]
    output = model.generate(**batch, encoded_audio=encoded, max_new_tokens=6, min_new_tokens=6,
                            return_dict_in_generate=True, output_scores=True)
    assert torch.equal(output.sequences, expected) and len(output.scores) == 6
    assert answer_token_budget(10.0) == 96 and answer_token_budget(2.0, tokens_per_second=4, slack=0) == 8


def test_from_pretrained_remembers_its_directory(base_models, tmp_path):
    directory = build(base_models, "qwen2").save_pretrained(tmp_path / "graft")
    assert GraftModel.from_pretrained(directory).directory == directory
    assert build(base_models, "qwen2").directory is None


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_only_loss_equals_the_llms_full_logits_loss(base_models, family):
    model = build(base_models, family, projector="stack", downsample=2)
    batch = model.processor(make_clips([0.7, 2.2, 1.3]), answers=["the fox", "hello world again", "dog"])
    with torch.no_grad():
        output = model(**batch)
        embeds = model._merge_audio(batch["input_ids"], batch["audio_mask"], model.embed_audio(*model.encode_audio(
            batch["input_features"], batch["feature_lengths"])))
        extra = {"input_ids": batch["input_ids"]} if model._llm_takes_ids_with_embeds else {}
        reference = model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"],
                              **extra)
    labelled_positions = int((batch["labels"][:, 1:] != -100).any(0).sum())
    assert output.logits.shape[1] == labelled_positions < batch["input_ids"].shape[1] - 1
    torch.testing.assert_close(output.loss, reference.loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_static_cache_decodes_the_same_tokens(base_models, family):
    model = build(base_models, family)
    clips = make_clips([0.6, 2.5, 1.1])
    dynamic = greedy(model, clips, max_new_tokens=7)
    static = model.generate(**model.processor(clips), max_new_tokens=7, min_new_tokens=7, static_cache=True)
    assert torch.equal(dynamic, static)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(**model.processor(clips), static_cache=True)


def test_merged_lora_gives_the_same_answers_and_refuses_adapter_saving(base_models, tmp_path):
    model = build(base_models, "qwen2")
    model.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, parameter in model.llm.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    saved = model.save_pretrained(tmp_path / "graft")
    clips = make_clips([0.8, 1.9])
    adapter = GraftModel.from_pretrained(saved)
    merged = GraftModel.from_pretrained(saved, merge_lora=True)
    assert merged.lora_merged and not any("lora_" in name for name, _ in merged.llm.named_parameters())
    assert torch.equal(greedy(adapter, clips), greedy(merged, clips))
    with pytest.raises(ValueError, match="merged"):
        merged.save_pretrained(tmp_path / "again")


def test_compiled_static_cache_decoding_gives_the_same_tokens(base_models):
    # On a GPU transformers compiles the decode step by itself for a static cache; on the CPU it is asked to.
    from transformers import CompileConfig

    model = build(base_models, "qwen2")
    compile_config = CompileConfig(mode="default")
    compile_config._compile_all_devices = True
    clips = make_clips([0.6, 2.5, 1.1])
    expected = greedy(model, clips, max_new_tokens=7)
    compiled = model.generate(**model.processor(clips), max_new_tokens=7, min_new_tokens=7, static_cache=True,
                              compile_config=compile_config)
    assert torch.equal(expected, compiled)


@pytest.mark.parametrize("family", FAMILIES)
def test_ctc_auxiliary_loss_adds_to_the_answer_loss_and_trains_the_projector(base_models, family):
    model = build(base_models, family, projector="stack", downsample=2)
    model.train()
    batch = model.processor(make_clips([1.5, 2.0]), answers=["hello world", "the lazy dog"])
    plain = model(**batch).loss
    output = model(**batch, ctc_weight=0.3)
    torch.testing.assert_close(output.answer_loss, plain)
    assert torch.isfinite(output.ctc_loss) and output.ctc_loss > 0
    torch.testing.assert_close(output.loss, plain + 0.3 * output.ctc_loss)
    output.ctc_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert all(p.grad is None for p in model.llm.parameters())


def test_ctc_targets_are_the_answer_text_tokens_without_special_tokens(base_models, monkeypatch):
    model = build(base_models, "qwen2", projector="stack", downsample=2)
    batch = model.processor(make_clips([2.0]), answers=["hello world"])
    seen = {}

    def recording_ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
        seen.update(targets=targets, blank=blank, frames=log_probs.shape[0])
        return log_probs.sum() * 0

    monkeypatch.setattr(torch.nn.functional, "ctc_loss", recording_ctc_loss)
    with torch.no_grad():
        model(**batch, ctc_weight=1.0)
    tokenizer = model.processor.tokenizer
    answer = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    assert seen["targets"].tolist()[: len(answer)] == answer
    assert not set(seen["targets"].tolist()) & set(tokenizer.all_special_ids)
    assert seen["blank"] in tokenizer.all_special_ids


def test_ctc_loss_parts_survive_accelerates_fp32_output_conversion(base_models):
    # Under mixed precision accelerate rebuilds the forward's output from its items (convert_outputs_to_fp32):
    # parts kept as plain attributes were lost there (AttributeError on answer_loss in a bf16 GPU run).
    from accelerate.utils import convert_outputs_to_fp32

    model = build(base_models, "qwen2", projector="stack", downsample=2)
    batch = model.processor(make_clips([1.5]), answers=["hello world"])
    with torch.no_grad():
        output = convert_outputs_to_fp32(model.forward)(**batch, ctc_weight=0.5)
    torch.testing.assert_close(output.loss, output.answer_loss + 0.5 * output.ctc_loss)


def perturb_lora_b(module: torch.nn.Module, std: float = 0.1) -> None:
    """LoRA's B starts at zero, so a fresh adapter changes nothing; random B makes it matter."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, std)


def encoder_frames(model: GraftModel, clips) -> torch.Tensor:
    batch = model.processor(clips)
    with torch.no_grad():
        return model.encode_audio(batch["input_features"], batch["feature_lengths"])[0]


def test_encoder_lora_round_trips_through_its_own_adapter_file(base_models, tmp_path):
    model = build(base_models, "qwen2", encoder_layer=-1, encoder_lora=EncoderLoraSettings(r=4, top_layers=1))
    clips = make_clips([1.2, 0.8])
    unadapted = encoder_frames(model, clips)
    perturb_lora_b(model.encoder)
    adapted = encoder_frames(model, clips)
    assert (adapted - unadapted).abs().max() > 1e-3
    with torch.no_grad():
        expected = model(**model.processor(clips)).logits

    directory = model.save_pretrained(tmp_path / "graft")
    saved = load_file(directory / ENCODER_LORA_WEIGHTS)
    # The adapter alone, named inside the encoder, on the top layer only; never a frozen encoder weight.
    assert set(saved) == {n for n, _ in model.encoder.model.named_parameters() if "lora_" in n}
    assert saved and all(name.startswith("layers.1.") and "lora_" in name for name in saved)
    restored = GraftModel.from_pretrained(directory)
    assert restored.config == model.config
    assert not any(p.requires_grad for p in restored.encoder.parameters())
    assert torch.equal(encoder_frames(restored, clips), adapted)
    with torch.no_grad():
        assert torch.equal(restored(**restored.processor(clips)).logits, expected)


def test_encoder_lora_weights_that_do_not_fit_or_are_missing_are_refused(base_models, tmp_path):
    directory = build(base_models, "qwen2", encoder_lora=EncoderLoraSettings(r=2)).save_pretrained(tmp_path / "graft")
    adapter = load_file(directory / ENCODER_LORA_WEIGHTS)
    save_file({**adapter, "layers.0.fc1.lora_C.default.weight": torch.zeros(1)}, directory / ENCODER_LORA_WEIGHTS)
    with pytest.raises(ValueError, match="unexpected"):
        GraftModel.from_pretrained(directory)
    save_file({k: v for k, v in adapter.items() if "fc2" not in k}, directory / ENCODER_LORA_WEIGHTS)
    with pytest.raises(ValueError, match="missing"):
        GraftModel.from_pretrained(directory)
    (directory / ENCODER_LORA_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=ENCODER_LORA_WEIGHTS):
        GraftModel.from_pretrained(directory)


def test_merge_folds_the_encoder_lora_into_the_encoder_weights(base_models, tmp_path):
    model = build(base_models, "llama", encoder_layer=1, encoder_lora=EncoderLoraSettings(r=4, top_layers=1),
                  lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    perturb_lora_b(model.encoder)
    perturb_lora_b(model.llm)
    merged = merged_with_same_logits(model, tmp_path)
    assert merged.config.encoder_lora is None and merged.config.encoder_layer == 1
    assert not (tmp_path / "merged" / ENCODER_LORA_WEIGHTS).exists()
    encoder_weights = load_file(tmp_path / "merged" / "encoder" / "model.safetensors")
    assert not any("lora_" in name or "base_layer" in name for name in encoder_weights)


def test_encoder_gradients_flow_only_when_its_lora_trains_and_never_at_inference(base_models):
    model = build(base_models, "qwen2", encoder_lora=EncoderLoraSettings(r=2))
    batch = model.processor(make_clips([1.0]))
    features, lengths = batch["input_features"], batch["feature_lengths"]
    assert model.encode_audio(features, lengths)[0].requires_grad  # a new adapter trains, as a new LLM LoRA does
    with torch.no_grad():
        assert not model.encode_audio(features, lengths)[0].requires_grad
    with torch.inference_mode():
        assert not model.encode_audio(features, lengths)[0].requires_grad
    model.encoder.requires_grad_(False)
    assert not model.encode_audio(features, lengths)[0].requires_grad



def test_save_pretrained_writes_the_encoder_adapter_from_the_trained_tensors_it_is_given(base_models, tmp_path):
    # Sharded training (FSDP) passes gathered copies of what trains: those, not the module's shards, are saved.
    model = build(base_models, "qwen2", encoder_lora=EncoderLoraSettings(r=2, top_layers=1))
    trained = {f"projector.{n}": p.detach() for n, p in model.projector.named_parameters()}
    trained |= {n: torch.full_like(p, 0.25) for n, p in model.named_parameters() if "lora_" in n}
    directory = model.save_pretrained(tmp_path / "graft", trained)
    adapter = load_file(directory / ENCODER_LORA_WEIGHTS)
    assert set(adapter) == set(model.encoder.lora_state_dict())
    assert all(torch.equal(value, torch.full_like(value, 0.25)) for value in adapter.values())
