"""The Transcriber pipeline on a tiny random graft: VAD gating, windows, batching, guards, words, files, chat."""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import TOKENIZER, make_clips, save_qwen2_audio
from transformers import LogitsProcessor, LogitsProcessorList

from audiograft.audio.io import SAMPLE_RATE, AudioError, load_audio
from audiograft.audio.vad import Span
from audiograft.inference.alignment import WordAligner
from audiograft.inference.transcriber import (
    Transcriber,
    TranscriptionOptions,
    _ChosenTokenLogprobs,
    stitch,
)
from audiograft.inference.transcript import Segment, Word
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel

SPEECH = load_audio(Path(__file__).parents[2] / "examples" / "jfk.flac")  # 11 s, four phrases with pauses
SILENCE = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)


@pytest.fixture(scope="module")
def graft(base_models):
    torch.manual_seed(0)
    config = GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]))
    return GraftModel.from_config(config).eval()


@pytest.fixture
def transcriber(graft):
    return Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,)))


class ForceText(LogitsProcessor):
    """Makes generate pick the tokens of `text`, then end the turn (unless `ends` is False)."""

    def __init__(self, text: str, end_of_turn: int, ends: bool = True):
        self.ids = TOKENIZER(text, add_special_tokens=False)["input_ids"] + ([end_of_turn] if ends else [])
        self.prompt_length = None

    def __call__(self, input_ids, scores):
        self.prompt_length = self.prompt_length or input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.ids[step % len(self.ids)]] = 0.0
        return forced


def force_answers(monkeypatch, model, answer_at, ends=True):
    """Every generate call answers `answer_at(temperature)`; returns the calls' keyword arguments."""
    generate, calls = model.generate, []

    def forced(**kwargs):
        temperature = kwargs.get("temperature", 0.0) if kwargs.get("do_sample") else 0.0
        calls.append(kwargs | {"temperature": temperature})
        force = ForceText(answer_at(temperature), model.processor.end_of_turn_id, ends)
        kwargs["logits_processor"] = LogitsProcessorList([*kwargs.get("logits_processor", []), force])
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", forced)
    return calls


def test_stitch_moves_word_times_to_clip_time_and_drops_silent_windows():
    windows = [
        (Span(0, 2 * SAMPLE_RATE), [Word("hello", 0.1, 0.5, 0.9)]),
        (Span(3 * SAMPLE_RATE, 4 * SAMPLE_RATE), []),
        (Span(5 * SAMPLE_RATE, 8 * SAMPLE_RATE), [Word("big", 0.0, 0.4, 0.8), Word("world.", None, None, None)]),
    ]
    transcript = stitch(windows, duration=9.0)
    assert transcript.text == "hello big world."
    assert transcript.segments == [
        Segment(0, 0.0, 2.0, "hello", [Word("hello", 0.1, 0.5, 0.9)]),
        Segment(1, 5.0, 8.0, "big world.", [Word("big", 5.0, 5.4, 0.8), Word("world.", None, None, None)]),
    ]
    assert stitch([], duration=2.0).text == ""


def test_silence_and_noise_give_empty_transcripts_without_generating(transcriber, monkeypatch):
    def no_generate(**kwargs):
        raise AssertionError("generate must not run on audio without speech")

    monkeypatch.setattr(transcriber.model, "generate", no_generate)
    noise = 0.2 * np.random.default_rng(0).standard_normal(40 * SAMPLE_RATE).astype(np.float32)
    transcripts = transcriber.transcribe_batch([SILENCE, noise, make_clips([2.0])[0]])
    assert [(t.text, t.segments, t.duration) for t in transcripts] == [("", [], 3.0), ("", [], 40.0), ("", [], 2.0)]


def test_long_audio_is_windowed_within_the_limit_and_windows_of_all_clips_share_batches(transcriber, monkeypatch):
    long_clip = np.concatenate([SPEECH, np.zeros(8 * SAMPLE_RATE, dtype=np.float32), SPEECH])
    calls = force_answers(monkeypatch, transcriber.model, lambda _: "hello world")
    prepared = []
    featurize = transcriber.processor.featurize
    monkeypatch.setattr(transcriber.processor, "featurize",
                        lambda clips, device: prepared.append(clips) or featurize(clips, device))
    short, long = transcriber.transcribe_batch([SPEECH, long_clip], max_window_seconds=5.0, batch_size=64)

    assert len(calls) == 1 and len(prepared) == 1  # one batch: every window of both clips
    assert all(clip.size <= 5 * SAMPLE_RATE for clip in prepared[0])
    assert len(prepared[0]) == len(short.segments) + len(long.segments)
    assert len(long.segments) == 2 * len(short.segments) >= 4
    for transcript in (short, long):
        spans = [(s.start, s.end) for s in transcript.segments]
        assert all(end - start <= 5.0 for start, end in spans)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
        assert transcript.text == " ".join(["hello world"] * len(spans))
    second_half = [s for s in long.segments if s.start >= SPEECH.size / SAMPLE_RATE + 7]
    assert len(second_half) == len(short.segments)


def test_a_looping_answer_is_decoded_again_at_a_higher_temperature(graft, monkeypatch):
    transcriber = Transcriber(graft)
    calls = force_answers(monkeypatch, graft, lambda t: "the fox " * 6 if t == 0 else "the quick brown fox")
    assert transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE]).text == "the quick brown fox"
    assert [call["temperature"] for call in calls] == [0.0, 0.2]


def test_a_loop_at_every_temperature_is_cut_after_its_first_copy(graft, monkeypatch):
    transcriber = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0, 0.5, 1.0)))
    calls = force_answers(monkeypatch, graft, lambda _: "hello world " * 6)
    assert transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE]).text == "hello world"
    assert [call["temperature"] for call in calls] == [0.0, 0.5, 1.0]


def test_sampled_answers_repeat_with_the_seed_and_leave_the_callers_random_state_alone(graft):
    def sampled(seed: int) -> str:
        options = TranscriptionOptions(temperatures=(1.0,), seed=seed, max_new_tokens=12)
        return Transcriber(graft, options=options).transcribe(SPEECH[: 2 * SAMPLE_RATE]).text

    state = torch.get_rng_state()
    first = sampled(0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(3)  # wherever the caller's own random state stands
    assert sampled(0) == first
    assert first and sampled(1) != first


def test_answers_are_bounded_by_the_window_duration(graft, monkeypatch):
    transcriber = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,), max_tokens_per_second=2.0))
    sentence = "the quick brown fox jumps over the lazy dog"
    calls = force_answers(monkeypatch, graft, lambda _: sentence, ends=False)
    windows = transcriber.transcribe(SPEECH, max_window_seconds=5.0).segments
    budgets = [16 + int(2.0 * (s.end - s.start)) for s in windows]
    assert calls[0]["max_new_tokens"] == max(budgets)
    endless = TOKENIZER(sentence, add_special_tokens=False)["input_ids"] * 10
    assert [s.text for s in windows] == [" ".join(TOKENIZER.decode(endless[:budget]).split()) for budget in budgets]


def test_word_confidences_come_from_token_probabilities(transcriber, monkeypatch):
    force_answers(monkeypatch, transcriber.model, lambda _: "the quick fox")
    words = transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE]).segments[0].words
    assert [w.word for w in words] == ["the", "quick", "fox"]
    assert all(0.0 <= w.confidence <= 1.0 and w.start is None for w in words)
    assert len({w.confidence for w in words}) > 1


def test_a_calibrator_saved_with_the_model_calibrates_the_confidences(graft, tmp_path, monkeypatch):
    from audiograft.inference.alignment import ConfidenceCalibrator

    directory = graft.save_pretrained(tmp_path / "graft")
    ConfidenceCalibrator(slope=0.0, intercept=0.0).save(directory)  # every word: sigmoid(0) = 0.5
    monkeypatch.setattr(graft, "directory", directory)
    calibrated = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,)))
    force_answers(monkeypatch, graft, lambda _: "the quick fox")
    words = calibrated.transcribe(SPEECH[: 2 * SAMPLE_RATE]).segments[0].words
    assert [w.confidence for w in words] == pytest.approx([0.5, 0.5, 0.5])
    raw = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,)), calibrated=False)
    raw_words = raw.transcribe(SPEECH[: 2 * SAMPLE_RATE]).segments[0].words
    assert [w.word for w in raw_words] == ["the", "quick", "fox"]
    assert [w.confidence for w in raw_words] != pytest.approx([0.5, 0.5, 0.5])


class FakeAligner:
    frame_seconds = 0.02  # the tiny Whisper encoder's

    def __init__(self):
        self.frames = []

    def align(self, frames, words):
        self.frames.append(frames)
        return [(0.1 * i, 0.1 * i + 0.05) for i in range(len(words))]


def test_word_timestamps_need_an_aligner_and_are_moved_to_clip_time(transcriber, monkeypatch):
    with pytest.raises(ValueError, match="word aligner"):
        transcriber.transcribe(SPEECH, word_timestamps=True)
    aligner = FakeAligner()
    monkeypatch.setattr(transcriber, "_aligner", aligner)
    force_answers(monkeypatch, transcriber.model, lambda _: "hello world")
    segments = transcriber.transcribe(SPEECH, word_timestamps=True, max_window_seconds=5.0).segments
    for segment, frames in zip(sorted(segments, key=lambda s: s.end - s.start), aligner.frames):
        assert frames.shape[1] == 32 and abs(frames.shape[0] - 50 * (segment.end - segment.start)) <= 1
    for segment in segments:
        times = [time for w in segment.words for time in (w.start, w.end)]
        assert times == pytest.approx([segment.start + offset for offset in (0.0, 0.05, 0.1, 0.15)])


class LetterAligner(FakeAligner):
    """Finds a hypothesis likelier the more of its letters are in `heard`."""

    def __init__(self, heard):
        super().__init__()
        self.heard = heard

    def letter_nlls(self, frames, hypotheses):
        letters = ["".join(words).lower() for words in hypotheses]
        return [-sum(c in self.heard for c in text) + sum(c not in self.heard for c in text) for text in letters]


def test_letter_checked_decoding_keeps_the_answer_whose_letters_the_aligner_hears(transcriber, monkeypatch):
    calls = force_answers(monkeypatch, transcriber.model,
                          lambda temperature: "hello my name is amy" if temperature == 0 else "go up")
    assert transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE]).text == "hello my name is amy"
    assert len(calls) == 1  # off by default: one greedy decoding, and no aligner asked
    with pytest.raises(ValueError, match="ctc_candidates need a word aligner"):
        transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE], ctc_candidates=2)
    monkeypatch.setattr(transcriber, "_aligner", LetterAligner(heard="goup"))
    calls.clear()
    result = transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE], ctc_candidates=3, candidate_temperature=0.5)
    assert result.text == "go up"
    assert [c["temperature"] for c in calls] == [0.0, 0.5]
    assert calls[1]["input_ids"].shape[0] == 3 * calls[0]["input_ids"].shape[0]  # every window's candidates at once
    monkeypatch.setattr(transcriber, "_aligner", LetterAligner(heard="helomynaisy"))
    assert transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE], ctc_candidates=3).text == "hello my name is amy"


def test_word_times_follow_a_qwen2_audio_encoders_40_ms_frames(base_models, tmp_path, monkeypatch):
    save_qwen2_audio(tmp_path / "qwen2_audio")
    torch.manual_seed(0)
    graft = GraftModel.from_config(GraftConfig(encoder=str(tmp_path / "qwen2_audio"), llm=str(base_models["qwen2"])))
    transcriber = Transcriber(graft.eval(), options=TranscriptionOptions(temperatures=(0.0,)))
    assert graft.encoder.frame_seconds == pytest.approx(0.04)
    # Words without letters are spread over their whole window, so the last one ends where the window does.
    force_answers(monkeypatch, graft, lambda _: "25 &")
    monkeypatch.setattr(transcriber, "_aligner", WordAligner(graft.encoder.hidden_size, frame_seconds=0.04).eval())
    segments = transcriber.transcribe(SPEECH, word_timestamps=True, max_window_seconds=5.0).segments
    assert segments
    for segment in segments:
        assert segment.words[0].start == pytest.approx(segment.start)
        assert segment.words[-1].end == pytest.approx(segment.end, abs=0.04)
    # An aligner trained on Whisper's 20 ms frames would put every word at half its time: it is refused.
    monkeypatch.setattr(transcriber, "_aligner", WordAligner(graft.encoder.hidden_size, frame_seconds=0.02))
    with pytest.raises(ValueError, match="20 ms encoder frames.*40 ms"):
        transcriber.transcribe(SPEECH, word_timestamps=True)


def test_any_task_reaches_the_prompt(transcriber, monkeypatch):
    calls = force_answers(monkeypatch, transcriber.model, lambda _: "hello")
    transcriber.transcribe(SPEECH[: 2 * SAMPLE_RATE], task="Summarise what is said.")
    assert "\nSummarise what is said.<|im_end|>" in TOKENIZER.decode(calls[0]["input_ids"][0])


def test_bad_waveforms_are_refused_by_index_before_any_work(transcriber):
    for bad, cause in [
        (np.zeros((2, 800), dtype=np.float32), "1-D"),
        (np.array([], dtype=np.float32), "1-D"),
        (np.zeros(800, dtype=np.int16), "float"),
        (np.full(800, np.nan, dtype=np.float32), "NaN"),
    ]:
        with pytest.raises(AudioError, match=f"clip 1: .*{cause}"):
            transcriber.transcribe_batch([SILENCE, bad])
    with pytest.raises(ValueError, match="max_window_seconds"):
        transcriber.transcribe(SILENCE, max_window_seconds=31.0)


def test_files_are_transcribed_in_order_and_a_bad_file_does_not_stop_the_rest(transcriber, tmp_path):
    good, silent = tmp_path / "speech.flac", tmp_path / "silent.wav"
    soundfile.write(good, SPEECH[: 3 * SAMPLE_RATE], SAMPLE_RATE)
    soundfile.write(silent, SILENCE, SAMPLE_RATE)
    corrupt, empty = tmp_path / "corrupt.wav", tmp_path / "empty.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    empty.write_bytes(b"")
    paths = [corrupt, good, tmp_path / "missing.mp3", silent, empty]
    results = list(transcriber.transcribe_files(paths, progress=False, batch_size=2))
    assert [path for path, _ in results] == paths
    errors = {path.name: str(result) for path, result in results if isinstance(result, AudioError)}
    assert set(errors) == {"corrupt.wav", "missing.mp3", "empty.wav"}
    assert all(str(tmp_path / name) in message for name, message in errors.items())
    assert results[1][1].segments and results[1][1].duration == 3.0
    assert results[3][1].text == ""


def test_a_clip_too_short_for_the_voice_detector_is_named_and_the_good_files_still_run(transcriber, tmp_path):
    good, blip = tmp_path / "speech.flac", tmp_path / "blip.wav"
    soundfile.write(good, SPEECH[: 3 * SAMPLE_RATE], SAMPLE_RATE)
    soundfile.write(blip, SPEECH[: SAMPLE_RATE // 50], SAMPLE_RATE)  # 20 ms
    results = dict(transcriber.transcribe_files([good, blip], progress=False))
    assert results[good].segments and results[good].duration == 3.0
    assert isinstance(results[blip], AudioError)
    assert str(results[blip]).startswith(f"{blip}: 20 ms of audio is too short")
    with pytest.raises(AudioError, match="clip 1: 20 ms of audio is too short"):
        transcriber.transcribe_batch([SILENCE, SPEECH[: SAMPLE_RATE // 50]])


def test_chat_holds_every_clip_in_order_across_turns(transcriber, monkeypatch):
    calls = force_answers(monkeypatch, transcriber.model, lambda _: "the second one")
    first, second, third = SPEECH[:SAMPLE_RATE], SPEECH[: 2 * SAMPLE_RATE], SPEECH[: SAMPLE_RATE // 2]
    conversation = [
        {"role": "user", "content": [{"type": "audio", "audio": first}, {"type": "audio", "audio": second},
                                     {"type": "text", "text": "Which is longer?"}]},
        {"role": "assistant", "content": "The second."},
        {"role": "user", "content": [{"type": "audio", "audio": third}, {"type": "text", "text": "And this one?"}]},
    ]
    assert transcriber.chat(conversation) == "the second one"
    prompt, audio_mask = calls[0]["input_ids"][0], calls[0]["audio_mask"][0]
    positions = np.flatnonzero(audio_mask.numpy())
    runs = np.split(positions, np.flatnonzero(np.diff(positions) > 1) + 1)
    assert [len(run) for run in runs] == transcriber.model.processor.audio_token_counts(torch.tensor([100, 200, 50]))
    text = TOKENIZER.decode(prompt[~audio_mask])
    assert text.index("Audio 1: ") < text.index("Audio 2: ") < text.index("Which is longer?") < text.index(
        "The second.") < text.index("Audio 3: ") < text.index("And this one?")
    assert calls[0]["max_new_tokens"] == 256


def test_chat_refuses_a_clip_past_the_encoder_window(transcriber):
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": np.zeros(31 * SAMPLE_RATE, np.float32)}]}]
    with pytest.raises(AudioError, match="audio 1: 31.0 s is longer than 30 s"):
        transcriber.chat(conversation)


def test_a_static_kv_cache_gives_the_same_transcripts(graft, monkeypatch):
    from transformers import StaticCache

    clips = [SPEECH, SPEECH[: 3 * SAMPLE_RATE]]  # windows of several lengths: a left-padded batch
    plain = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,)))
    expected = plain.transcribe_batch(clips, max_window_seconds=5.0)
    caches, generate = [], graft.llm.generate
    monkeypatch.setattr(graft.llm, "generate", lambda **kw: caches.append(kw.get("past_key_values")) or generate(**kw))
    static = Transcriber(graft, options=TranscriptionOptions(temperatures=(0.0,), static_cache=True))
    actual = static.transcribe_batch(clips, max_window_seconds=5.0)
    assert caches and all(isinstance(cache, StaticCache) for cache in caches)
    assert all(t.text for t in expected)
    assert [t.text for t in actual] == [t.text for t in expected]
    assert [[s.text for s in t.segments] for t in actual] == [[s.text for s in t.segments] for t in expected]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the scores must live on another device than the ids")
def test_chosen_token_logprobs_take_ids_returned_on_another_device():
    # `generate` runs on the GPU and the transcriber moves its ids to the CPU before asking for their scores: the
    # first GPU evaluation (2026-11-30) failed here with "index is on cpu, different from other tensors on cuda:0".
    recorder = _ChosenTokenLogprobs()
    scores = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], device="cuda")
    recorder(torch.zeros(2, 4, dtype=torch.long, device="cuda"), scores)
    logprobs = recorder.finish(torch.tensor([[0, 1], [0, 0]]))
    torch.testing.assert_close(logprobs[:, 0], torch.log_softmax(scores, -1).cpu()[[0, 1], [1, 0]])
