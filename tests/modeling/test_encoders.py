import pytest
import torch
from conftest import make_clips, processor_for, save_qwen2_audio
from transformers import WhisperForConditionalGeneration

from audiograft.modeling.encoders import load_encoder


def test_loads_only_encoder_and_full_context_matches_whisper(base_models):
    encoder = load_encoder(str(base_models["whisper"]), context="full")
    processor = processor_for(base_models["whisper"], encoder_context="full")
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any("decoder" in name for name, _ in encoder.named_parameters())
    whisper = WhisperForConditionalGeneration.from_pretrained(base_models["whisper"]).eval()
    features, lengths = processor.featurize(make_clips([1.0, 2.5]))
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
        expected = whisper.model.encoder(features).last_hidden_state
    assert output_lengths.tolist() == [50, 125]
    torch.testing.assert_close(hidden, expected[:, :125])


def test_trimmed_context_is_batch_invariant_and_cheaper(base_models):
    encoder = load_encoder(str(base_models["whisper"]), context="trim")
    processor = processor_for(base_models["whisper"])
    clips = make_clips([0.73, 2.01, 1.5])
    features, lengths = processor.featurize(clips)
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
        assert hidden.shape[1] == int(output_lengths.max()) == 101
        for index, clip in enumerate(clips):
            single_features, single_lengths = processor.featurize([clip])
            alone, alone_lengths = encoder(single_features, single_lengths)
            n = int(alone_lengths[0])
            torch.testing.assert_close(hidden[index, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_qwen2_audio_tower_loads_from_full_checkpoint_and_pools(tmp_path):
    save_qwen2_audio(tmp_path / "qa")
    encoder = load_encoder(str(tmp_path / "qa"), context="trim")
    features, lengths = processor_for(tmp_path / "qa").featurize(make_clips([1.0]))
    with torch.no_grad():
        hidden, output_lengths = encoder(features, lengths)
    assert output_lengths.tolist() == [25] and hidden.shape == (1, 25, 32)


def test_unknown_encoder_and_missing_directory_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(str(tmp_path / "nowhere"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="unsupported encoder model_type 'bert'"):
        load_encoder(str(tmp_path / "bert"))


def test_encode_clips_gives_each_clip_its_own_frames(base_models):
    encoder = load_encoder(str(base_models["whisper"]), "trim")
    processor = processor_for(base_models["whisper"])
    clips = make_clips([0.73, 2.01])
    with torch.no_grad():
        encoded = encoder.encode_clips(*processor.featurize(clips))
        for clip, (frames, feature_length) in zip(clips, encoded):
            alone, alone_lengths = encoder(*processor.featurize([clip]))
            assert feature_length == int(processor.featurize([clip])[1][0])
            assert frames.shape[0] == int(alone_lengths[0])
            torch.testing.assert_close(frames, alone[0, : frames.shape[0]], atol=1e-5, rtol=1e-5)
