import pytest
import torch
from conftest import make_clips, save_qwen2_audio
from transformers import WhisperForConditionalGeneration

from audiograft.modeling.encoders import load_encoder


def test_loads_only_encoder_and_full_context_matches_whisper(base_models):
    encoder = load_encoder(str(base_models["whisper"]), context="full")
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any("decoder" in name for name, _ in encoder.named_parameters())
    whisper = WhisperForConditionalGeneration.from_pretrained(base_models["whisper"]).eval()
    features, lengths = encoder.featurize(make_clips([1.0, 2.5]))
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
        expected = whisper.model.encoder(features).last_hidden_state
    assert output_lengths.tolist() == [50, 125]
    torch.testing.assert_close(hidden, expected[:, :125])


def test_trimmed_context_is_batch_invariant_and_cheaper(base_models):
    encoder = load_encoder(str(base_models["whisper"]), context="trim")
    clips = make_clips([0.73, 2.01, 1.5])
    features, lengths = encoder.featurize(clips)
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
        assert hidden.shape[1] == int(output_lengths.max()) == 101
        for index, clip in enumerate(clips):
            single_features, single_lengths = encoder.featurize([clip])
            alone, alone_lengths = encoder(single_features, single_lengths)
            n = int(alone_lengths[0])
            torch.testing.assert_close(hidden[index, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_qwen2_audio_tower_loads_from_full_checkpoint_and_pools(tmp_path):
    save_qwen2_audio(tmp_path / "qa")
    encoder = load_encoder(str(tmp_path / "qa"), context="trim")
    features, lengths = encoder.featurize(make_clips([1.0]))
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
    assert output_lengths.tolist() == [25] and hidden.shape == (1, 25, 32)


def test_featurize_and_forward_refuse_bad_clips(base_models):
    encoder = load_encoder(str(base_models["whisper"]))
    with pytest.raises(ValueError, match="clip 1: expected a non-empty"):
        encoder.featurize(make_clips([1.0]) + [make_clips([1.0])[0][:0]])
    with pytest.raises(ValueError, match="longer than 30 s"):
        encoder.featurize(make_clips([30.5]))


def test_unknown_encoder_and_missing_directory_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(str(tmp_path / "nowhere"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="unsupported encoder model_type 'bert'"):
        load_encoder(str(tmp_path / "bert"))


@pytest.mark.parametrize("context", ["trim", "full"])
def test_features_equal_whisper_feature_extractor_on_valid_frames(base_models, context):
    encoder = load_encoder(str(base_models["whisper"]), context)
    clips = make_clips([0.73, 2.0, 4.31])
    features, lengths = encoder.featurize(clips)
    expected = encoder.feature_extractor(clips, sampling_rate=16000, return_attention_mask=True, return_tensors="pt",
                                         padding="max_length")
    assert torch.equal(lengths, expected["attention_mask"].sum(-1))
    assert features.shape[-1] == (3000 if context == "full" else 434)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(features[row, :, :length], expected["input_features"][row, :, :length],
                                   atol=1e-5, rtol=1e-5)


def test_encode_clips_gives_each_clip_its_own_frames(base_models):
    encoder = load_encoder(str(base_models["whisper"]), "trim")
    clips = make_clips([0.73, 2.01])
    with torch.no_grad():
        encoded = encoder.encode_clips(clips)
        for clip, (frames, feature_length) in zip(clips, encoded):
            alone, alone_lengths = encoder(*encoder.featurize([clip]))
            assert feature_length == int(encoder.featurize([clip])[1][0])
            assert frames.shape[0] == int(alone_lengths[0])
            torch.testing.assert_close(frames, alone[0, : frames.shape[0]], atol=1e-5, rtol=1e-5)
