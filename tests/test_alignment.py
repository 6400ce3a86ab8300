import math

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from audiograft.alignment import (
    ALPHABET,
    CALIBRATOR_FILE,
    ConfidenceCalibrator,
    WordAligner,
    collate,
    encoder_frames,
    forced_align,
    make_example,
    spoken_letters,
    timing_errors,
    train_aligner,
    word_token_groups,
    words_from_tokens,
)
from audiograft.cli import app
from audiograft.data import Utterance, WordTiming, write_manifest
from audiograft.encoder_cache import EncoderCache
from audiograft.encoders import load_encoder
from audiograft.evaluation import expected_calibration_error
from conftest import TOKENIZER, make_clips

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
    assert aligner.align(torch.zeros(20, 4), ["Go", "up!"]) == pytest.approx([(0.04, 0.20), (0.20, 0.36)])
    # Without trained edges the letters' own frames are the words.
    aligner.edge_supervised = False
    assert aligner.align(torch.zeros(20, 4), ["Go", "up!"]) == pytest.approx([(0.08, 0.16), (0.24, 0.32)])


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


def test_aligner_save_load_round_trip(tmp_path):
    assert WordAligner.from_pretrained(tmp_path) is None
    aligner = WordAligner(16, hidden_size=32, layers=2).eval()
    aligner.save_pretrained(tmp_path)
    loaded = WordAligner.from_pretrained(tmp_path)
    frames = torch.randn(1, 40, 16)
    for ours, theirs in zip(aligner(frames, torch.tensor([40])), loaded(frames, torch.tensor([40]))):
        torch.testing.assert_close(ours, theirs, atol=2e-2, rtol=0)  # saved in fp16
    assert {p.suffix for p in tmp_path.iterdir()} == {".safetensors", ".json"}


def test_outputs_do_not_depend_on_batch_padding():
    aligner = WordAligner(8, hidden_size=16).eval()
    frames = torch.randn(2, 30, 8)
    batched = aligner(frames, torch.tensor([30, 18]))
    alone = aligner(frames[1:, :18], torch.tensor([18]))
    for together, single in zip(batched, alone):
        torch.testing.assert_close(together[1, :18], single[0])


def test_make_example_marks_word_edges_between_frames():
    example = make_example(torch.zeros(50, 4), "Hi, there 2", [WordTiming("Hi,", 0.1, 0.35), WordTiming("there", 0.35, 0.6)])
    assert example.letters == [letter_id(c) for c in "hithere"]
    starts, ends = example.edge_targets[:, 0], example.edge_targets[:, 1]
    assert starts[5] == 1.0 and starts[17] == pytest.approx(0.5) and starts[18] == pytest.approx(0.5)
    assert ends[16] == pytest.approx(0.5) and ends[29] == 1.0
    assert starts.sum() == pytest.approx(2.0) and ends.sum() == pytest.approx(2.0)
    assert make_example(torch.zeros(50, 4), "hi", None).edge_targets is None


def synthetic_examples(count: int, seed: int = 0):
    """Frames that carry their letters: each letter sounds for three frames as a fixed random vector."""
    rng = np.random.default_rng(seed)
    sounds = rng.standard_normal((CLASSES, 8)).astype(np.float32)
    words = ["go", "up", "cat", "dog"]
    examples = []
    for _ in range(count):
        chosen = list(rng.choice(words, 3))
        frames, timings, t = [sounds[0]] * 2, [], 2
        for word in chosen:
            timings.append(WordTiming(word, t * 0.02, (t + 3 * len(word)) * 0.02))
            for letter in word:
                frames += [sounds[letter_id(letter)]] * 3
            t += 3 * len(word)
        frames += [sounds[0]] * 2
        noisy = torch.tensor(np.stack(frames)) + 0.1 * torch.randn(len(frames), 8)
        examples.append(make_example(noisy, " ".join(chosen), timings))
    return examples


def test_a_short_training_run_lowers_the_loss():
    examples = synthetic_examples(48)
    batch = collate(examples)
    torch.manual_seed(0)  # as train_aligner seeds itself: the same initial weights
    with torch.no_grad():
        before = float(WordAligner(8, hidden_size=32, layers=1).eval().loss(batch))
    aligner = train_aligner(examples, hidden_size=32, layers=1, epochs=15, lr=1e-2, batch_frames=400)
    with torch.no_grad():
        after = float(aligner.loss(batch))
    assert after < 0.5 * before
    assert aligner.edge_supervised
    assert not train_aligner(examples[:4], hidden_size=8, layers=1, epochs=1, edge_weight=0).edge_supervised
    errors = timing_errors(aligner, [(Utterance("x", "", 1.0, e_words), e.frames) for e, e_words in
                                     zip(examples[:8], [_timings(e) for e in examples[:8]])])
    assert errors.n_words == 24 and errors.mae_ms < 40


def _timings(example):
    # The word timings make_example was given, read back from its edge targets (exact frame boundaries here).
    starts = torch.nonzero(example.edge_targets[:, 0] == 1).flatten().tolist()
    ends = torch.nonzero(example.edge_targets[:, 1] == 1).flatten().tolist()
    return [WordTiming(str(i), s * 0.02, (e + 1) * 0.02) for i, (s, e) in enumerate(zip(starts, ends))]


def test_encoder_frames_pairs_readable_clips_with_their_frames(base_models, tmp_path):
    encoder = load_encoder(str(base_models["whisper"]))
    utterances = []
    for index, clip in enumerate(make_clips([1.0, 0.5])):
        soundfile.write(tmp_path / f"{index}.wav", clip, 16000)
        utterances.append(Utterance(tmp_path / f"{index}.wav", "hi", clip.size / 16000))
    utterances.insert(1, Utterance(tmp_path / "missing.wav", "lost", 1.0))
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    utterances.append(Utterance(tmp_path / "broken.wav", "lost", 1.0))
    clips = encoder_frames(EncoderCache(tmp_path / "cache", encoder, "tiny"), utterances)
    assert [u.audio.name for u, _ in clips] == ["0.wav", "1.wav"]
    assert [tuple(f.shape) for _, f in clips] == [(50, 32), (25, 32)]
    with torch.no_grad():
        expected, _ = encoder(*encoder.featurize([make_clips([1.0, 0.5])[1]]))
    torch.testing.assert_close(clips[1][1], expected[0], atol=1e-4, rtol=1e-4)  # batched with the other clip


def test_align_train_command_writes_the_aligner_into_the_graft(base_models, tmp_path):
    runner = CliRunner()
    graft = tmp_path / "graft"
    runner.invoke(app, ["init", str(graft), "--encoder", str(base_models["whisper"]), "--llm", str(base_models["qwen2"])])
    utterances = []
    for index, clip in enumerate(make_clips([1.0, 0.8, 1.2])):
        soundfile.write(tmp_path / f"{index}.wav", clip, 16000)
        words = [WordTiming("the", 0.1, 0.3), WordTiming("fox", 0.3, 0.7)]
        utterances.append(Utterance(tmp_path / f"{index}.wav", "the fox", clip.size / 16000, words))
    manifest = write_manifest(tmp_path / "train.jsonl", utterances)
    result = runner.invoke(app, ["align-train", str(graft), str(manifest), "--dev", str(manifest), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "boundary MAE" in result.output
    aligner = WordAligner.from_pretrained(graft)
    assert aligner is not None and aligner.edge_supervised
    assert len(aligner.align(torch.zeros(50, 32), ["the", "fox"])) == 2
