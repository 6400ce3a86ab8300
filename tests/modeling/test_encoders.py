import pytest
import torch
from conftest import make_clips, processor_for, save_qwen2_audio
from transformers import WhisperForConditionalGeneration

from audiograft.modeling.config import EncoderLoraSettings
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


def _frames(encoder, processor, durations=(1.0, 2.5)):
    with torch.no_grad():
        return encoder(*processor.featurize(make_clips(list(durations))))


def test_trimmed_encoder_layer_k_runs_only_the_first_k_layers_then_the_final_norm(base_models):
    processor = processor_for(base_models["whisper"])
    last, last_lengths = _frames(load_encoder(str(base_models["whisper"]), "trim"), processor)
    first_layer = load_encoder(str(base_models["whisper"]), "trim", layer=1)
    calls = []
    first_layer.model.layers[1].register_forward_hook(lambda *args: calls.append(1))
    frames, lengths = _frames(first_layer, processor)
    # By hand: the same encoder cut down to its first layer, whose own output is that layer then layer_norm.
    by_hand = load_encoder(str(base_models["whisper"]), "trim")
    by_hand.model.layers = by_hand.model.layers[:1]
    expected, _ = _frames(by_hand, processor)
    assert not calls  # the layer above the chosen one never runs
    assert torch.equal(lengths, last_lengths) and frames.shape == last.shape
    torch.testing.assert_close(frames, expected)
    assert (frames - last).abs().max() > 1e-3


def test_full_context_encoder_layer_matches_whispers_own_hidden_states(base_models):
    whisper = WhisperForConditionalGeneration.from_pretrained(base_models["whisper"]).eval()
    processor = processor_for(base_models["whisper"], encoder_context="full")
    features, lengths = processor.featurize(make_clips([1.0, 2.5]))
    with torch.no_grad():
        stock = whisper.model.encoder(features, output_hidden_states=True)
        # hidden_states[1] is the first layer's output, before the final layer_norm that the encoder's output gets.
        expected = whisper.model.encoder.layer_norm(stock.hidden_states[1])
        frames, _ = load_encoder(str(base_models["whisper"]), "full", layer=-2)(features, lengths)
        top, _ = load_encoder(str(base_models["whisper"]), "full", layer=-1)(features, lengths)
    torch.testing.assert_close(frames, expected[:, :125])
    # The layer-by-layer path, run to the top, gives the stock forward's output.
    torch.testing.assert_close(top, stock.last_hidden_state[:, :125])
    assert (frames - top).abs().max() > 1e-3


@pytest.mark.parametrize("layer", [3, -3])
def test_an_encoder_layer_the_encoder_lacks_is_named_with_the_layer_count(base_models, layer):
    with pytest.raises(ValueError, match=rf"encoder_layer={layer} does not name a layer of this encoder, which has 2"):
        load_encoder(str(base_models["whisper"]), layer=layer)


def test_encoder_lora_adapts_the_top_layers_that_run_and_folds_into_plain_weights(base_models):
    processor = processor_for(base_models["whisper"])
    encoder = load_encoder(str(base_models["whisper"]), "trim", layer=1)
    targets = encoder.add_lora(EncoderLoraSettings(r=2, top_layers=1))
    assert sorted(targets) == sorted(f"layers.0.{name}" for name in
                                     ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                                      "fc1", "fc2"])
    assert set(encoder.lora_state_dict()) == {n for n, _ in encoder.model.named_parameters() if "lora_" in n}
    plain, _ = _frames(encoder, processor)
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)  # B starts at zero: make the adapter change the frames
    adapted, _ = _frames(encoder, processor)
    assert (adapted - plain).abs().max() > 1e-3

    folded = load_encoder(str(base_models["whisper"]), "trim", layer=1)
    folded.model.load_state_dict(encoder.merged_state_dict(), strict=True)
    torch.testing.assert_close(_frames(folded, processor)[0], adapted, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="top_layers=2 but only 1 encoder layers run"):
        load_encoder(str(base_models["whisper"]), layer=1).add_lora(EncoderLoraSettings(top_layers=2))
