"""Training the word aligner: examples, the loss, a short run, encoder frames from the cache, align-train."""

import numpy as np
import pytest
import soundfile
import torch
from conftest import make_clips, processor_for
from typer.testing import CliRunner

from audiograft.cli import app
from audiograft.inference.alignment import ALPHABET, LETTER_IDS, WordAligner
from audiograft.manifest import Utterance, Word, write_manifest
from audiograft.modeling.encoders import load_encoder
from audiograft.training.aligner import (
    aligner_loss,
    collate,
    encoder_frames,
    make_example,
    timing_errors,
    train_aligner,
)
from audiograft.training.encoder_cache import EncoderCache

CLASSES = len(ALPHABET) + 1


def test_make_example_marks_word_edges_between_frames():
    timings = [Word("Hi,", 0.1, 0.35), Word("there", 0.35, 0.6)]
    example = make_example(torch.zeros(50, 4), "Hi, there 2", timings, frame_seconds=0.02)
    assert example.letters == [LETTER_IDS[c] for c in "hithere"]
    starts, ends = example.edge_targets[:, 0], example.edge_targets[:, 1]
    assert starts[5] == 1.0 and starts[17] == pytest.approx(0.5) and starts[18] == pytest.approx(0.5)
    assert ends[16] == pytest.approx(0.5) and ends[29] == 1.0
    assert starts.sum() == pytest.approx(2.0) and ends.sum() == pytest.approx(2.0)
    assert make_example(torch.zeros(50, 4), "hi", None, frame_seconds=0.02).edge_targets is None
    # Qwen2-Audio's 40 ms frames: the same times fall on half the frame numbers.
    starts = make_example(torch.zeros(25, 4), "Hi, there", timings, frame_seconds=0.04).edge_targets[:, 0]
    assert starts[2] == pytest.approx(0.5) and starts[3] == pytest.approx(0.5) and starts[9] == pytest.approx(0.75)


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
            timings.append(Word(word, t * 0.02, (t + 3 * len(word)) * 0.02))
            for letter in word:
                frames += [sounds[LETTER_IDS[letter]]] * 3
            t += 3 * len(word)
        frames += [sounds[0]] * 2
        noisy = torch.tensor(np.stack(frames)) + 0.1 * torch.randn(len(frames), 8)
        examples.append(make_example(noisy, " ".join(chosen), timings, frame_seconds=0.02))
    return examples


def test_a_short_training_run_lowers_the_loss():
    examples = synthetic_examples(48)
    batch = collate(examples)
    torch.manual_seed(0)  # as train_aligner seeds itself: the same initial weights
    with torch.no_grad():
        before = float(aligner_loss(WordAligner(8, hidden_size=32, layers=1).eval(), batch))
    aligner = train_aligner(examples, frame_seconds=0.02, hidden_size=32, layers=1, epochs=15, lr=1e-2,
                            batch_frames=400)
    with torch.no_grad():
        after = float(aligner_loss(aligner, batch))
    assert after < 0.5 * before
    assert aligner.edge_supervised
    letters_only = train_aligner(examples[:4], frame_seconds=0.04, hidden_size=8, layers=1, epochs=1, edge_weight=0)
    assert not letters_only.edge_supervised and letters_only.frame_seconds == 0.04
    errors = timing_errors(aligner, [(Utterance("x", "", 1.0, e_words), e.frames) for e, e_words in
                                     zip(examples[:8], [_timings(e) for e in examples[:8]])])
    assert errors.n_words == 24 and errors.mae_ms < 40


def _timings(example):
    # The word timings make_example was given, read back from its edge targets (exact frame boundaries here).
    starts = torch.nonzero(example.edge_targets[:, 0] == 1).flatten().tolist()
    ends = torch.nonzero(example.edge_targets[:, 1] == 1).flatten().tolist()
    return [Word(str(i), s * 0.02, (e + 1) * 0.02) for i, (s, e) in enumerate(zip(starts, ends))]


def test_encoder_frames_pairs_readable_clips_with_their_frames(base_models, tmp_path):
    encoder = load_encoder(str(base_models["whisper"]))
    processor = processor_for(base_models["whisper"])
    utterances = []
    for index, clip in enumerate(make_clips([1.0, 0.5])):
        soundfile.write(tmp_path / f"{index}.wav", clip, 16000)
        utterances.append(Utterance(tmp_path / f"{index}.wav", "hi", clip.size / 16000))
    utterances.insert(1, Utterance(tmp_path / "missing.wav", "lost", 1.0))
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    utterances.append(Utterance(tmp_path / "broken.wav", "lost", 1.0))
    clips = encoder_frames(EncoderCache(tmp_path / "cache", encoder, processor, "tiny"), utterances)
    assert [u.audio.name for u, _ in clips] == ["0.wav", "1.wav"]
    assert [tuple(f.shape) for _, f in clips] == [(50, 32), (25, 32)]
    with torch.no_grad():
        expected, _ = encoder(*processor.featurize([make_clips([1.0, 0.5])[1]]))
    torch.testing.assert_close(clips[1][1], expected[0], atol=1e-4, rtol=1e-4)  # batched with the other clip


def test_align_train_command_writes_the_aligner_into_the_graft(base_models, tmp_path):
    runner = CliRunner()
    graft = tmp_path / "graft"
    runner.invoke(app, ["init", str(graft), "--encoder", str(base_models["whisper"]), "--llm", str(base_models["qwen2"])])
    utterances = []
    for index, clip in enumerate(make_clips([1.0, 0.8, 1.2])):
        soundfile.write(tmp_path / f"{index}.wav", clip, 16000)
        words = [Word("the", 0.1, 0.3), Word("fox", 0.3, 0.7)]
        utterances.append(Utterance(tmp_path / f"{index}.wav", "the fox", clip.size / 16000, words))
    manifest = write_manifest(tmp_path / "train.jsonl", utterances)
    result = runner.invoke(app, ["align-train", str(graft), str(manifest), "--dev", str(manifest), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "boundary MAE" in result.output
    aligner = WordAligner.from_pretrained(graft)
    assert aligner is not None and aligner.edge_supervised
    assert len(aligner.align(torch.zeros(50, 32), ["the", "fox"])) == 2
