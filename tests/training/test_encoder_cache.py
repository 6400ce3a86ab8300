import os

import pytest
import soundfile
import torch
from conftest import config_for

from audiograft.manifest import Utterance, read_manifest
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel
from audiograft.training.data import SpeechDataset
from audiograft.training.encoder_cache import EncoderCache
from audiograft.training.loop import read_log, train


@pytest.fixture(scope="module")
def graft(base_models):
    return GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))


def test_fill_encodes_each_clip_once_and_matches_the_encoder(graft, manifest, tmp_path):
    utterances = read_manifest(manifest)
    cache = EncoderCache(tmp_path, graft.encoder, graft.processor, "whisper-tiny-test")
    assert cache.fill(utterances, batch_size=5) == len(utterances)
    assert cache.fill(utterances) == 0
    assert len(list(cache.directory.rglob("*.safetensors"))) == len(utterances)

    frames, feature_length = cache.load(utterances[3].audio)
    waveform, _ = soundfile.read(utterances[3].audio, dtype="float32")
    features, lengths = graft.processor.featurize([waveform])
    expected, frame_lengths = graft.encoder(features, lengths)
    assert feature_length == int(lengths[0]) and frames.shape[0] == int(frame_lengths[0])
    torch.testing.assert_close(frames, expected[0, : frame_lengths[0]], atol=1e-5, rtol=1e-4)

    os.utime(utterances[3].audio, ns=(1, 1))  # a changed file is a miss, never a stale hit
    assert cache.fill(utterances) == 1
    assert EncoderCache(tmp_path, graft.encoder, graft.processor, "another-encoder").fill(utterances[:2]) == 2


def test_a_saved_grafts_cache_is_its_encoders_run_as_it_runs_it(base_models, manifest, tmp_path):
    saved = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]),
                                               encoder_context="full", encoder_layer=1))
    saved.save_pretrained(tmp_path / "graft")
    cache = EncoderCache.of_saved_graft(tmp_path / "cache", tmp_path / "graft")
    by_hand = EncoderCache(tmp_path / "cache", saved.encoder, saved.processor, saved.config.encoder)
    assert cache.directory == by_hand.directory
    assert (cache.encoder.context, cache.encoder.used_layers) == ("full", 1)
    utterances = read_manifest(manifest)[:2]
    cache.fill(utterances)
    frames, _ = cache.load(utterances[0].audio)
    waveform, _ = soundfile.read(utterances[0].audio, dtype="float32")
    expected, frame_lengths = saved.encoder(*saved.processor.featurize([waveform]))
    torch.testing.assert_close(frames, expected[0, : frame_lengths[0]], atol=1e-5, rtol=1e-4)


def test_dataset_reports_an_uncached_clip_and_refuses_augmentation(graft, tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, torch.zeros(1600).numpy(), 16000)
    cache = EncoderCache(tmp_path / "cache", graft.encoder, graft.processor, "whisper-tiny-test")
    example = SpeechDataset([Utterance(path, "hi", 0.1)], encoder_cache=cache)[0]
    assert example.error is not None and "a.wav: not in the encoder cache" in example.error
    with pytest.raises(ValueError, match="cannot be augmented"):
        SpeechDataset([Utterance(path, "hi", 0.1)], augment=lambda w, rng: w, encoder_cache=cache)


@pytest.mark.parametrize("stage", [1, 2])
def test_training_from_the_cache_matches_training_from_audio(base_models, manifest, tmp_path, stage):
    # The encoder is frozen in both stages, so stage 2 (LoRA) can train from cached frames as well.
    plain = config_for(base_models, manifest, tmp_path / "plain", max_steps=6, stage=stage)
    cached = config_for(base_models, manifest, tmp_path / "cached", max_steps=6, stage=stage,
                        encoder_cache=str(tmp_path / "cache"))
    train(plain)
    train(cached)
    plain_losses = [r["loss"] for r in read_log(tmp_path / "plain") if "loss" in r]
    cached_losses = [r["loss"] for r in read_log(tmp_path / "cached") if "loss" in r]
    assert cached_losses == pytest.approx(plain_losses, rel=1e-4)
    assert any((tmp_path / "cache").rglob("*.safetensors"))
    with pytest.raises(ValueError, match="encoder_cache needs training without augment"):
        config_for(base_models, manifest, tmp_path, encoder_cache="c", augment=True)


def test_each_encoder_layer_gets_its_own_cache_and_the_top_layer_keeps_the_old_one(base_models, tmp_path):
    def cache_for(encoder_layer):
        graft = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]),
                                                   encoder_layer=encoder_layer))
        return EncoderCache(tmp_path, graft.encoder, graft.processor, "whisper-tiny-test").directory

    last = cache_for(None)
    assert cache_for(1) != last
    assert cache_for(-1) == last == cache_for(2)  # the same frames: the whole encoder's output


def test_the_cache_refuses_an_encoder_with_lora(base_models, manifest, tmp_path):
    model = {"encoder": str(base_models["whisper"]), "llm": str(base_models["qwen2"]), "encoder_lora": {"r": 2}}
    with pytest.raises(ValueError, match="encoder_cache needs a frozen encoder"):
        config_for(base_models, manifest, tmp_path, model=model, encoder_cache=str(tmp_path / "cache"))
    # A saved graft's adapter is only known once it loads: the cache itself refuses it.
    graft = GraftModel.from_config(GraftConfig(**model))
    with pytest.raises(ValueError, match="has a LoRA adapter"):
        EncoderCache(tmp_path / "cache", graft.encoder, graft.processor, "whisper-tiny-test")
