import pytest
from conftest import EOS_ENDED_TEMPLATE, TOKENIZER

from audiograft.bench.architectures import chatml_tokenizer
from audiograft.modeling.prompting import (
    AUDIO_MARKER,
    IGNORE_INDEX,
    Prompter,
    user_text,
)


# A template whose assistant turn ends with the EOS token, which is also the pad token.
def test_labels_cover_the_answer_and_its_end_of_turn_only():
    prompter = Prompter(TOKENIZER)
    prompt = prompter.encode([5], "Transcribe the audio.", answer="hello world")
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
    prompter = Prompter(tokenizer)
    batch = prompter.collate(
        [prompter.encode([3], answer="the fox"), prompter.encode([9], answer="hello world again")], "right"
    )
    for row in range(2):
        learned = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert learned[-1] == tokenizer.eos_token_id
    assert prompter.end_of_turn_id == tokenizer.eos_token_id
    assert tokenizer.eos_token_id in prompter.stop_token_ids


def test_audio_positions_sit_inside_the_user_turn_in_clip_order():
    prompter = Prompter(TOKENIZER, system_prompt="You are helpful.")
    prompt = prompter.encode([4, 7], "Compare the clips.")
    positions = [i for i, is_audio in enumerate(prompt.audio_mask) if is_audio]
    assert len(positions) == 11
    assert positions[4] - positions[3] > 1  # "\nAudio 2: " separates the two clips
    text_before = TOKENIZER.decode(prompt.input_ids[: positions[0]])
    assert "system\nYou are helpful." in text_before and text_before.endswith("Audio 1: ")
    assert TOKENIZER.decode(prompt.input_ids[positions[-1] + 1 :]).startswith("\nCompare the clips.<|im_end|>")
    assert user_text("Do it.", 1) == f"{AUDIO_MARKER}\nDo it."


@pytest.mark.parametrize("side", ["left", "right"])
def test_collate_pads_on_the_requested_side(side):
    prompter = Prompter(TOKENIZER)
    short, long = prompter.encode([2]), prompter.encode([6])
    batch = prompter.collate([short, long], side)
    assert "labels" not in batch
    mask = batch["attention_mask"][0].tolist()
    pad = len(long.input_ids) - len(short.input_ids)
    assert mask == ([0] * pad + [1] * len(short.input_ids) if side == "left" else [1] * len(short.input_ids) + [0] * pad)
    assert batch["audio_mask"].sum(1).tolist() == [2, 6]


def test_tokenizer_without_chat_template_is_refused():
    tokenizer = chatml_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        Prompter(tokenizer)


def test_conversation_numbers_clips_across_turns_and_keeps_roles():
    from audiograft.modeling.prompting import conversation_messages

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
    from audiograft.modeling.prompting import conversation_messages

    with pytest.raises(ValueError, match=complaint):
        conversation_messages(conversation)


def test_encode_messages_places_each_clip_where_its_marker_is():
    prompter = Prompter(TOKENIZER)
    messages = [
        {"role": "user", "content": f"Audio 1: {AUDIO_MARKER}\nfirst"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": f"Audio 2: {AUDIO_MARKER}\nsecond"},
    ]
    prompt = prompter.encode_messages(messages, [3, 5])
    positions = [i for i, is_audio in enumerate(prompt.audio_mask) if is_audio]
    assert len(positions) == 8
    between = TOKENIZER.decode(prompt.input_ids[positions[2] + 1 : positions[3]])
    assert "first<|im_end|>" in between and "assistant\nok<|im_end|>" in between and between.endswith("Audio 2: ")
    with pytest.raises(ValueError, match="audio marker"):
        prompter.encode_messages(messages, [3])
