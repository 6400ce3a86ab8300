import json
import math

import numpy as np
import pytest
import torch
from conftest import TOKENIZER, make_clips, processor_for, save_qwen2_audio

from audiograft.evaluation.metrics import expected_calibration_error
from audiograft.inference.alignment import (
    ALIGNER_CONFIG,
    ALPHABET,
    CALIBRATOR_FILE,
    ConfidenceCalibrator,
    WordAligner,
    forced_align,
    letter_targets,
    spoken_letters,
    word_token_groups,
    words_from_tokens,
)
from audiograft.modeling.encoders import load_encoder

CLASSES = len(ALPHABET) + 1


def letter_id(letter: str) -> int:
    return ALPHABET.index(letter) + 1


def emissions(frames: int, peaks: dict[int, str]) -> np.ndarray:
    """Log-probabilities that say blank everywhere except one letter at each peak frame."""
    log_probs = np.full((frames, CLASSES), -20.0)
    log_probs[:, 0] = -0.01
    for frame, letter in peaks.items():
        log_probs[frame] = -20.0
        log_probs[frame, letter_id(letter)] = -0.01
    return log_probs


def test_forced_align_follows_the_letters_and_refuses_too_few_frames():
    log_probs = emissions(12, {2: "a", 3: "a", 6: "b", 10: "c"})
    path = forced_align(log_probs, [letter_id(c) for c in "abc"])
    assert path.tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 5, 6]
    assert forced_align(log_probs[:2], [letter_id(c) for c in "abc"]) is None
    # A doubled letter needs a blank between its two frames: "ll" cannot fit in two frames.
    assert forced_align(emissions(2, {}), [letter_id("l"), letter_id("l")]) is None
    assert forced_align(emissions(3, {}), [letter_id("l"), letter_id("l")]).tolist() == [1, 2, 3]


def test_spoken_letters_keeps_what_the_aligner_can_place():
    assert spoken_letters("Café,") == "cafe"
    assert spoken_letters("'Don't'") == "don't"
    assert spoken_letters("25") == ""


def test_letter_targets_are_the_words_letters_run_together():
    assert "".join(ALPHABET[i - 1] for i in letter_targets(["Café,", "25", "'Don't'"])) == "cafedon't"
    assert letter_targets(["25", "!"]) == []


@pytest.mark.parametrize("text", ["the quick brown fox jumps", "the fox,\nthe  dog 25."])
def test_word_token_groups_split_a_byte_level_bpe_at_white_space(text):
    ids = TOKENIZER.encode(text) + [TOKENIZER.convert_tokens_to_ids("<|im_end|>")]
    groups = word_token_groups(TOKENIZER, ids)
    assert [word for word, _ in groups] == text.split()
    assert [TOKENIZER.decode([ids[p] for p in positions]).strip() for _, positions in groups] == text.split()
    assert max(p for _, positions in groups for p in positions) == len(ids) - 2  # end of turn is in no word
    assert any(len(positions) > 1 for _, positions in groups)  # the tiny tokenizer splits words into pieces


def test_words_from_tokens_scores_a_word_by_the_product_of_its_token_probabilities():
    ids = TOKENIZER.encode("the lazy dog")
    groups = word_token_groups(TOKENIZER, ids)
    logprobs = [-0.1 * (k + 1) for k in range(len(ids))]
    words = words_from_tokens(TOKENIZER, ids, logprobs)
    assert [w for w, _ in words] == ["the", "lazy", "dog"]
    for (_, confidence), (_, positions) in zip(words, groups):
        assert confidence == pytest.approx(math.prod(math.exp(logprobs[p]) for p in positions))


def test_calibrator_fixes_overconfidence_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.5, 1.0, 4000)
    truth = 1 / (1 + np.exp(-(0.5 * np.log(raw / (1 - raw)) - 0.5)))  # the raw score claims too much
    correct = rng.uniform(size=raw.size) < truth
    calibrator = ConfidenceCalibrator.fit(raw[:2000], correct[:2000])
    before = expected_calibration_error(raw[2000:], correct[2000:])
    after = expected_calibration_error([calibrator(v) for v in raw[2000:]], correct[2000:])
    assert before > 0.15 and after < 0.04
    assert ConfidenceCalibrator.load(tmp_path) is None
    calibrator.save(tmp_path)
    assert (tmp_path / CALIBRATOR_FILE).is_file()
    assert ConfidenceCalibrator.load(tmp_path)(0.9) == pytest.approx(calibrator(0.9))
    with pytest.raises(ValueError, match="both right and wrong"):
        ConfidenceCalibrator.fit([0.9, 0.8], [True, True])


def designed_aligner(log_probs: np.ndarray, edge_logits: np.ndarray) -> WordAligner:
    """An aligner whose outputs are given, to test how it reads them."""
    aligner = WordAligner(4)
    aligner.forward = lambda frames, lengths: (torch.tensor(log_probs)[None], torch.tensor(edge_logits)[None])
    return aligner


def test_align_places_word_edges_where_the_edge_head_is_confident():
    # "go" sounds in frames 2..9 (letters spike at 4 and 7), "up" in 10..17 (spikes at 12 and 15).
    log_probs = emissions(20, {4: "g", 7: "o", 12: "u", 15: "p"})
    edge_logits = np.full((20, 2), -8.0)
    edge_logits[[2, 10], 0] = 5.0  # starts
    edge_logits[[9, 17], 1] = 5.0  # ends (after these frames)
    edge_logits[13, 0] = edge_logits[5, 1] = 9.0  # seams inside a word are never its edges
    aligner = designed_aligner(log_probs, edge_logits)
    assert np.array(aligner.align(torch.zeros(20, 4), ["Go", "up!"])) == pytest.approx(np.array([(0.04, 0.20), (0.20, 0.36)]))
    # Without trained edges the letters' own frames are the words.
    aligner.edge_supervised = False
    assert np.array(aligner.align(torch.zeros(20, 4), ["Go", "up!"])) == pytest.approx(np.array([(0.08, 0.16), (0.24, 0.32)]))


def test_letter_nlls_prefer_the_letters_that_sound_in_the_frames():
    aligner = designed_aligner(emissions(20, {4: "g", 7: "o", 12: "u", 15: "p"}), np.zeros((20, 2)))
    frames = torch.zeros(20, 4)
    said, misheard, silent, digits, plain = aligner.letter_nlls(
        frames, [["Go", "up!"], ["Go", "on"], [], ["25"], ["go", "up"]])
    assert 0 <= said < misheard
    assert said < silent and said < digits  # silence is unlikely too
    assert plain == pytest.approx(said)  # case and punctuation are not letters
    assert aligner.letter_nlls(frames, [["Go", "on"]]) == [misheard]  # each scored alone as among others


def test_align_times_every_word_monotonically_even_unplaceable_ones():
    log_probs = emissions(30, {3: "a", 20: "b"})
    aligner = designed_aligner(log_probs, np.zeros((30, 2)))
    aligner.edge_supervised = False
    times = aligner.align(torch.zeros(30, 4), ["25", "a", "&", "100", "b", "%"])
    assert len(times) == 6
    assert times[1] == pytest.approx((0.06, 0.08)) and times[4] == pytest.approx((0.40, 0.42))
    assert times[0] == pytest.approx((0.0, 0.06))
    assert times[2][0] == pytest.approx(0.08) and times[3][1] == pytest.approx(0.40)
    assert times[5] == pytest.approx((0.42, 0.60))
    # Too many letters for the frames: the words share the window.
    crowded = WordAligner(4).align(torch.zeros(3, 4), ["abracadabra", "hocus", "pocus"])
    for aligned in (times, crowded):
        flat = [t for span in aligned for t in span]
        assert flat == sorted(flat)
    assert crowded[0][0] == 0.0 and crowded[-1][1] == pytest.approx(0.06)
    assert WordAligner(4).align(torch.zeros(3, 4), []) == []


@pytest.mark.parametrize("encoder", ["whisper", "qwen2_audio"])
def test_word_times_are_seconds_at_the_encoders_frame_duration(encoder, base_models, tmp_path):
    if encoder == "qwen2_audio":
        save_qwen2_audio(tmp_path / "qwen2_audio")
    encoder_dir = tmp_path / "qwen2_audio" if encoder == "qwen2_audio" else base_models["whisper"]
    audio_encoder = load_encoder(str(encoder_dir))
    assert audio_encoder.feature_rate == 100
    assert audio_encoder.frame_seconds == {"whisper": 0.02, "qwen2_audio": 0.04}[encoder]
    frames, _ = audio_encoder.encode_clips(*processor_for(encoder_dir).featurize(make_clips([2.0])))[0]
    aligner = WordAligner(audio_encoder.hidden_size, frame_seconds=audio_encoder.frame_seconds).eval()
    # Words without letters share the whole window: the last one ends with the 2 s clip.
    times = aligner.align(frames, ["25", "&"])
    assert times[0][0] == 0.0 and times[-1][1] == pytest.approx(2.0)


def test_aligner_save_load_round_trip(tmp_path):
    assert WordAligner.from_pretrained(tmp_path) is None
    aligner = WordAligner(16, hidden_size=32, layers=2).eval()
    aligner.save_pretrained(tmp_path)
    loaded = WordAligner.from_pretrained(tmp_path)
    frames = torch.randn(1, 40, 16)
    for ours, theirs in zip(aligner(frames, torch.tensor([40])), loaded(frames, torch.tensor([40]))):
        torch.testing.assert_close(ours, theirs, atol=2e-2, rtol=0)  # saved in fp16
    assert {p.suffix for p in tmp_path.iterdir()} == {".safetensors", ".json"}
    WordAligner(16, frame_seconds=0.04).save_pretrained(tmp_path)
    assert WordAligner.from_pretrained(tmp_path).frame_seconds == 0.04
    # Files written before the frame duration was recorded were trained on Whisper's 20 ms frames.
    config = json.loads((tmp_path / ALIGNER_CONFIG).read_text())
    del config["frame_seconds"]
    (tmp_path / ALIGNER_CONFIG).write_text(json.dumps(config))
    assert WordAligner.from_pretrained(tmp_path).frame_seconds == 0.02


def test_outputs_do_not_depend_on_batch_padding():
    aligner = WordAligner(8, hidden_size=16).eval()
    frames = torch.randn(2, 30, 8)
    batched = aligner(frames, torch.tensor([30, 18]))
    alone = aligner(frames[1:, :18], torch.tensor([18]))
    for together, single in zip(batched, alone):
        torch.testing.assert_close(together[1, :18], single[0])
