import json
import pickle

import pytest
import torch
from conftest import (
    EOS_ENDED_TEMPLATE,
    LLM_KW,
    TOKENIZER,
    make_clips,
    processor_for,
    save_qwen2_audio,
)
from transformers import Qwen2Config

from audiograft.bench.architectures import chatml_tokenizer
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel
from audiograft.modeling.processor import (
    AUDIO_MARKER,
    IGNORE_INDEX,
    PROCESSOR_CONFIG_NAME,
    AudioSettings,
    GraftProcessor,
    conversation_messages,
    user_text,
)


def text_processor(tokenizer, system_prompt=None):
    """A processor for prompts alone: the audio settings are Whisper's, and no model or encoder is involved."""
    return GraftProcessor(tokenizer, GraftConfig(encoder="unused", llm="unused", system_prompt=system_prompt),
                          AudioSettings())


def test_labels_cover_the_answer_and_its_end_of_turn_only():
    processor = text_processor(TOKENIZER)
    prompt = processor.encode([5], "Transcribe the audio.", answer="hello world")
    learned = [label for label in prompt.labels if label != IGNORE_INDEX]
    answer_ids = TOKENIZER("hello world", add_special_tokens=False)["input_ids"]
    assert learned == answer_ids + [TOKENIZER.convert_tokens_to_ids("<|im_end|>")]
    first_learned = prompt.labels.index(learned[0])
    assert prompt.input_ids[first_learned : first_learned + len(learned)] == learned
    assert not any(prompt.audio_mask[first_learned:])


def test_eos_that_is_also_pad_is_still_learned_and_stops_generation():
    tokenizer = chatml_tokenizer()
    tokenizer.chat_template = EOS_ENDED_TEMPLATE
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    processor = text_processor(tokenizer)
    batch = processor.collate(
        [processor.encode([3], answer="the fox"), processor.encode([9], answer="hello world again")], "right"
    )
    for row in range(2):
        learned = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert learned[-1] == tokenizer.eos_token_id
    assert processor.end_of_turn_id == tokenizer.eos_token_id
    assert tokenizer.eos_token_id in processor.stop_token_ids


def test_audio_positions_sit_inside_the_user_turn_in_clip_order():
    processor = text_processor(TOKENIZER, system_prompt="You are helpful.")
    prompt = processor.encode([4, 7], "Compare the clips.")
    positions = [i for i, is_audio in enumerate(prompt.audio_mask) if is_audio]
    assert len(positions) == 11
    assert positions[4] - positions[3] > 1  # "\nAudio 2: " separates the two clips
    text_before = TOKENIZER.decode(prompt.input_ids[: positions[0]])
    assert "system\nYou are helpful." in text_before and text_before.endswith("Audio 1: ")
    assert TOKENIZER.decode(prompt.input_ids[positions[-1] + 1 :]).startswith("\nCompare the clips.<|im_end|>")
    assert user_text("Do it.", 1) == f"{AUDIO_MARKER}\nDo it."


@pytest.mark.parametrize("side", ["left", "right"])
def test_collate_pads_on_the_requested_side(side):
    processor = text_processor(TOKENIZER)
    short, long = processor.encode([2]), processor.encode([6])
    batch = processor.collate([short, long], side)
    assert "labels" not in batch
    mask = batch["attention_mask"][0].tolist()
    pad = len(long.input_ids) - len(short.input_ids)
    assert mask == ([0] * pad + [1] * len(short.input_ids) if side == "left" else [1] * len(short.input_ids) + [0] * pad)
    assert batch["audio_mask"].sum(1).tolist() == [2, 6]


def test_tokenizer_without_chat_template_is_refused():
    tokenizer = chatml_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        text_processor(tokenizer)


def test_conversation_numbers_clips_across_turns_and_keeps_roles():
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "audio", "audio": "b.wav"},
                                     {"type": "text", "text": "Which is louder?"}]},
        {"role": "assistant", "content": "The second."},
        {"role": "user", "content": [{"type": "audio", "audio": "c.wav"}, {"type": "text", "text": "And this?"}]},
    ]
    messages, clips = conversation_messages(conversation, system_prompt="Be brief.")
    assert clips == ["a.wav", "b.wav", "c.wav"]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Audio 1: {AUDIO_MARKER}\nAudio 2: {AUDIO_MARKER}\nWhich is louder?"},
        {"role": "assistant", "content": "The second."},
        {"role": "user", "content": f"Audio 3: {AUDIO_MARKER}\nAnd this?"},
    ]
    own_system = [{"role": "system", "content": "Mine."}, conversation[0]]
    assert conversation_messages(own_system, system_prompt="Be brief.")[0][0]["content"] == "Mine."


@pytest.mark.parametrize(
    "conversation, complaint",
    [
        ([{"role": "robot", "content": "hi"}], "role"),
        ([{"role": "user", "content": [{"type": "video", "video": "v.mp4"}]}], "audio or text"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "ends with a user"),
    ],
)
def test_malformed_conversations_are_refused(conversation, complaint):
    with pytest.raises(ValueError, match=complaint):
        conversation_messages(conversation)


def test_encode_messages_places_each_clip_where_its_marker_is():
    processor = text_processor(TOKENIZER)
    messages = [
        {"role": "user", "content": f"Audio 1: {AUDIO_MARKER}\nfirst"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": f"Audio 2: {AUDIO_MARKER}\nsecond"},
    ]
    prompt = processor.encode_messages(messages, [3, 5])
    positions = [i for i, is_audio in enumerate(prompt.audio_mask) if is_audio]
    assert len(positions) == 8
    between = TOKENIZER.decode(prompt.input_ids[positions[2] + 1 : positions[3]])
    assert "first<|im_end|>" in between and "assistant\nok<|im_end|>" in between and between.endswith("Audio 2: ")
    with pytest.raises(ValueError, match="audio marker"):
        processor.encode_messages(messages, [3])


def test_featurize_refuses_bad_clips(base_models):
    processor = processor_for(base_models["whisper"])
    with pytest.raises(ValueError, match="clip 1: expected a non-empty"):
        processor.featurize(make_clips([1.0]) + [make_clips([1.0])[0][:0]])
    with pytest.raises(ValueError, match="longer than 30 s"):
        processor.featurize(make_clips([30.5]))


@pytest.mark.parametrize("context", ["trim", "full"])
def test_features_equal_whisper_feature_extractor_on_valid_frames(base_models, context):
    processor = processor_for(base_models["whisper"], encoder_context=context)
    clips = make_clips([0.73, 2.0, 4.31])
    features, lengths = processor.featurize(clips)
    expected = processor.feature_extractor(clips, sampling_rate=16000, return_attention_mask=True,
                                           return_tensors="pt", padding="max_length")
    assert torch.equal(lengths, expected["attention_mask"].sum(-1))
    assert features.shape[-1] == (3000 if context == "full" else 434)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(features[row, :, :length], expected["input_features"][row, :, :length],
                                   atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def qwen2_audio_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen2_audio") / "qwen2_audio"
    save_qwen2_audio(path)
    return path


@pytest.mark.parametrize("encoder", ["whisper", "qwen2_audio"])
@pytest.mark.parametrize("projector, downsample", [("linear", 1), ("pool", 2), ("stack", 4), ("stack", 3)])
def test_audio_token_counts_from_configs_equal_the_tokens_the_model_makes(
    base_models, qwen2_audio_dir, encoder, projector, downsample
):
    encoder_dir = qwen2_audio_dir if encoder == "qwen2_audio" else base_models["whisper"]
    config = dict(projector=projector, downsample=downsample)
    model = GraftModel.from_config(GraftConfig(encoder=str(encoder_dir), llm=str(base_models["qwen2"]), **config))
    processor = processor_for(encoder_dir, **config)  # from the configs alone
    assert processor.audio == model.processor.audio
    assert processor.audio.pooling == (2 if encoder == "qwen2_audio" else 1)
    features, feature_lengths = processor.featurize(make_clips([0.5, 1.37, 2.9, 0.04]))
    with torch.no_grad():
        _, token_lengths = model.embed_audio(*model.encode_audio(features, feature_lengths))
    assert processor.audio_token_counts(feature_lengths) == token_lengths.tolist()
    per_second = 50 / processor.audio.pooling / downsample
    assert processor.audio_token_counts(torch.tensor([1000]))[0] == pytest.approx(10 * per_second, abs=1)


def test_a_training_batch_labels_the_answers_and_places_the_audio(base_models):
    processor = processor_for(base_models["whisper"], projector="stack", downsample=4)
    clips = make_clips([0.7, 1.9])
    batch = processor(clips, answers=["the fox", "hello world again"])
    counts = processor.audio_token_counts(batch["feature_lengths"])
    assert batch["audio_mask"].sum(1).tolist() == counts == [9, 24]
    assert batch["attention_mask"][:, 0].tolist() == [1, 1]  # right-padded for training
    for row, answer in enumerate(["the fox", "hello world again"]):
        learned = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert TOKENIZER.decode(learned) == answer + "<|im_end|>"
        assert not batch["audio_mask"][row][batch["labels"][row] != IGNORE_INDEX].any()
    generation = processor(clips)
    assert "labels" not in generation and generation["attention_mask"][:, -1].tolist() == [1, 1]  # left-padded


def test_prepare_encoded_counts_tokens_from_encoder_frames(base_models):
    processor = processor_for(base_models["whisper"], projector="pool", downsample=2)
    batch = processor.prepare_encoded([(torch.zeros(7, 32), 14), (torch.zeros(50, 32), 100)], None, ["a", "b"])
    assert batch["audio_mask"].sum(1).tolist() == [4, 25]
    assert batch["encoded_audio"][0].shape == (2, 50, 32) and batch["encoded_audio"][1].tolist() == [7, 50]
    assert batch["feature_lengths"].tolist() == [14, 100]


def test_processor_saved_with_the_model_loads_alone_and_equal(base_models, tmp_path):
    config = GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]), projector="stack",
                         system_prompt="Be brief.", instruction="Write down the words.")
    model = GraftModel.from_config(config)
    model.save_pretrained(tmp_path / "graft")
    assert json.loads((tmp_path / "graft" / PROCESSOR_CONFIG_NAME).read_text()) == {
        "mel_bins": 80, "window_frames": 3000, "pooling": 1}
    loaded = GraftProcessor.from_pretrained(tmp_path / "graft")
    assert loaded.audio == model.processor.audio and loaded.config == model.processor.config
    clips = make_clips([0.8, 1.6])
    for answers in (None, ["the fox", "hello"]):
        expected, actual = model.processor(clips, answers=answers), loaded(clips, answers=answers)
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert GraftModel.from_pretrained(tmp_path / "graft").processor.audio == model.processor.audio

    AudioSettings(mel_bins=128).save(tmp_path / "graft")
    with pytest.raises(ValueError, match="saved for an encoder hearing"):
        GraftModel.from_pretrained(tmp_path / "graft")


def test_processor_loads_without_weights_and_derives_settings_for_older_grafts(base_models, tmp_path):
    # The LLM base holds only its config and tokenizer, and the encoder named does not exist: no weights to read.
    llm = tmp_path / "llm"
    Qwen2Config(**LLM_KW).save_pretrained(llm)
    TOKENIZER.save_pretrained(llm)
    graft = tmp_path / "graft"
    graft.mkdir()
    GraftConfig(encoder=str(tmp_path / "no-encoder"), llm=str(llm), projector="linear", downsample=1).save(graft)
    AudioSettings(mel_bins=80, window_frames=3000, pooling=2).save(graft)
    processor = GraftProcessor.from_pretrained(graft)
    batch = processor(make_clips([1.0]))
    assert batch["input_features"].shape[1] == 80 and batch["audio_mask"].sum() == 25  # 1 s: 50 positions, pooled

    # A graft saved before processor_config.json existed: the settings come from the encoder's config.
    GraftConfig(encoder=str(base_models["whisper"]), llm=str(llm)).save(graft)
    (graft / PROCESSOR_CONFIG_NAME).unlink()
    assert GraftProcessor.from_pretrained(graft).audio == AudioSettings(80, 3000, 1)
    (graft / PROCESSOR_CONFIG_NAME).write_text('{"mel_bins": 80, "hop": 10}')
    with pytest.raises(ValueError, match="unknown keys hop"):
        GraftProcessor.from_pretrained(graft)


def test_processor_pickles_without_the_model(base_models):
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    restored = pickle.loads(pickle.dumps(model.processor))
    clips = make_clips([1.1])
    assert torch.equal(restored(clips)["input_ids"], model.processor(clips)["input_ids"])
