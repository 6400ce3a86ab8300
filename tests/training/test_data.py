import numpy as np
import pytest
import soundfile
import torch
from conftest import make_clips, write_lines

from audiograft.manifest import ManifestError, Utterance, read_manifest
from audiograft.training.data import (
    LengthBucketSampler,
    SpecAugment,
    SpeechCollator,
    SpeechDataset,
    with_existing_audio,
)


def test_dataset_reports_bad_files_without_failing(tmp_path):
    soundfile.write(tmp_path / "good.wav", make_clips([1.0])[0], 16000)
    soundfile.write(tmp_path / "long.wav", make_clips([31.0])[0], 16000)
    dataset = SpeechDataset(
        [Utterance(tmp_path / "good.wav", "ok", 1.0), Utterance(tmp_path / "gone.wav", "x", 1.0),
         Utterance(tmp_path / "long.wav", "y", 31.0)],
        max_seconds=30,
    )
    good, bad, long = dataset[0], dataset[1], dataset[2]
    assert good.error is None and good.waveform.shape == (16000,)
    assert bad.waveform is None and "gone.wav: no such file" in bad.error
    assert long.waveform is None and "longer than 30 s" in long.error


def test_a_skipped_utterance_is_named_by_its_manifest_line(tmp_path, caplog):
    soundfile.write(tmp_path / "good.wav", make_clips([1.0])[0], 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    path = write_lines(tmp_path / "m.jsonl", [{"audio": "good.wav", "text": "ok", "duration": 1.0}, "",
                                              {"audio": "corrupt.wav", "text": "x", "duration": 1.0}])
    example = SpeechDataset(read_manifest(path))[1]
    assert example.error.startswith(f"{path}:3: {tmp_path / 'corrupt.wav'}: not readable as audio")
    assert SpeechCollator(processor=None)([example]) is None
    assert [record.getMessage() for record in caplog.records] == [f"skipping {example.error}"]


def test_missing_audio_files_are_named_in_one_warning_and_left_out(tmp_path, caplog):
    soundfile.write(tmp_path / "a.wav", make_clips([1.0])[0], 16000)
    path = write_lines(tmp_path / "m.jsonl", [{"audio": name, "text": "x", "duration": 1.0}
                                              for name in ["gone.wav", "a.wav", "lost.flac"]])
    kept = with_existing_audio(read_manifest(path), str(path))
    assert [u.audio.name for u in kept] == ["a.wav"]
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: 2 of 3 audio files do not exist; their utterances are left out: "
        f"line 1 ({tmp_path / 'gone.wav'}), line 3 ({tmp_path / 'lost.flac'})"]
    with pytest.raises(ManifestError, match=f"{path}: none of its 2 audio files exists"):
        with_existing_audio(read_manifest(path)[::2], str(path))


def test_dataset_augmentation_is_seeded_per_epoch_and_item(tmp_path):
    soundfile.write(tmp_path / "a.wav", make_clips([1.0])[0], 16000)

    def augment(waveform, rng):
        return waveform + rng.standard_normal(waveform.size).astype(np.float32)

    dataset = SpeechDataset([Utterance(tmp_path / "a.wav", "ok", 1.0)], augment=augment, seed=3)
    first = dataset[0].waveform
    assert np.array_equal(first, dataset[0].waveform)
    dataset.set_epoch(1)
    assert not np.array_equal(first, dataset[0].waveform)


def test_bucket_sampler_groups_similar_lengths_deterministically():
    rng = np.random.default_rng(0)
    durations = rng.uniform(1, 20, 400).tolist()
    sampler = LengthBucketSampler(durations, batch_size=8, seed=1)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(400))
    assert batches == LengthBucketSampler(durations, batch_size=8, seed=1).batches()
    sampler.skip = 3
    assert list(sampler) == batches[3:] and len(sampler) == len(batches) - 3
    sampler.set_epoch(1)
    assert sampler.batches() != batches
    padding = sum(max(durations[i] for i in b) * len(b) - sum(durations[i] for i in b) for b in batches)
    random_batches = [list(range(s, s + 8)) for s in range(0, 400, 8)]
    random_padding = sum(max(durations[i] for i in b) * len(b) - sum(durations[i] for i in b) for b in random_batches)
    assert padding < 0.1 * random_padding


def test_bucket_sampler_caps_padded_seconds():
    durations = [1.0] * 10 + [10.0] * 10
    batches = LengthBucketSampler(durations, batch_size=8, max_batch_seconds=25, seed=0).batches()
    assert all(max(durations[i] for i in b) * len(b) <= 25 for b in batches)
    assert len(LengthBucketSampler(durations, batch_size=8, max_batch_seconds=25)) == len(batches)


def test_spec_augment_masks_only_valid_frames():
    features = torch.randn(2, 80, 3000)
    lengths = torch.tensor([3000, 400])
    augment = SpecAugment(freq_masks=2, freq_width=10, time_masks=2)
    masked = augment(features, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(masked[1, :, 400:], features[1, :, 400:])
    assert (masked != features).any()
    assert torch.equal(masked, augment(features, lengths, torch.Generator().manual_seed(0)))


def test_collator_builds_training_batch_and_drops_bad_examples(base_models):
    from audiograft import GraftConfig, GraftModel
    from audiograft.modeling.processor import IGNORE_INDEX
    from audiograft.training.data import Example

    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    clips = make_clips([1.0, 2.0])
    examples = [Example(0, "the fox", clips[0], seed_key=(0, 0, 0)), Example(1, "lost", error="gone.wav: no such file"),
                Example(2, "hello world", clips[1], seed_key=(0, 0, 2))]
    collator = SpeechCollator(model.processor, spec_augment=SpecAugment())
    batch = collator(examples)
    assert torch.equal(batch["input_features"], collator(examples)["input_features"])
    assert batch["input_features"].shape == (2, 80, 202)  # the longest clip (1 s) and a half window of silence
    assert batch["labels"].shape == batch["input_ids"].shape
    learned = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert model.processor.tokenizer.decode(learned[:-1]) == "the fox"
    assert SpeechCollator(model.processor)([examples[1]]) is None
