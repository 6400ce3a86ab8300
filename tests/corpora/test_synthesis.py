"""The synthetic corpus builder, on a tiny corpus made by whichever TTS engines are installed."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audiograft.audio.io import load_audio, write_audio
from audiograft.corpora import engines, synthesis, texts
from audiograft.corpora.engines import Voice
from audiograft.corpora.synthesis import build_corpus
from audiograft.manifest import read_manifest, read_training_manifest

UTTERANCES = 12

requires_engine = pytest.mark.skipif(
    not any(engine.is_installed() for engine in engines.ENGINES), reason="no TTS engine installed"
)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def voices() -> list[Voice]:
    found = engines.available_voices()
    if len(found) < 2:
        pytest.skip("holding voices out needs at least two installed voices")
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, voices) -> Path:
    if not (shutil.which("bible") or Path("/usr/share/wordnet").is_dir()):
        pytest.skip("no text source installed (bible-kjv, wordnet-base)")
    out_dir = tmp_path_factory.mktemp("corpus")
    summary = build_corpus(out_dir, UTTERANCES, seed=3, workers=2, test_fraction=0.25, progress=False)
    assert summary.failed == 0
    assert sum(summary.utterances.values()) == UTTERANCES
    return out_dir


def test_plan_is_reproducible_and_held_out_by_voice_and_sentence(voices):
    sentences = {"written": [f"Sentence number {word} is here today." for word in "abcdefghijklmnopqrst"]}
    plan = synthesis.plan_corpus(40, voices, sentences, seed=5, test_fraction=0.2)
    assert plan == synthesis.plan_corpus(40, voices, sentences, seed=5, test_fraction=0.2)
    assert plan[:10] == synthesis.plan_corpus(10, voices, sentences, seed=5, test_fraction=0.2)
    assert plan != synthesis.plan_corpus(40, voices, sentences, seed=6, test_fraction=0.2)
    by_split = {split: [u for u in plan if u.split == split] for split in synthesis.SPLITS}
    assert len(by_split["test"]) == 8
    assert not {u.voice for u in by_split["train"]} & {u.voice for u in by_split["test"]}
    assert not {u.text for u in by_split["train"]} & {u.text for u in by_split["test"]}
    assert all(synthesis.RATE_RANGE[0] <= u.rate <= synthesis.RATE_RANGE[1] for u in plan)


def test_plan_draws_each_pool_by_its_weight_and_holds_out_texts_of_every_pool(voices):
    pools = {
        "short": [f"Word {letter}." for letter in "abcdefghij"],
        "long": [f"A longer sentence {letter} with more words." for letter in "abcdefghij"],
        "unused": ["This pool is weighted zero."] * 3,
    }
    plan = synthesis.plan_corpus(400, voices, pools, seed=1, test_fraction=0.25,
                                 weights={"short": 3, "long": 1, "unused": 0})
    drawn = {name: [u for u in plan if u.text in pool] for name, pool in pools.items()}
    assert not drawn["unused"]
    assert 2.2 < len(drawn["short"]) / len(drawn["long"]) < 4
    for name in ("short", "long"):
        by_split = {split: {u.text for u in drawn[name] if u.split == split} for split in synthesis.SPLITS}
        assert by_split["test"] and by_split["train"] and not by_split["test"] & by_split["train"]
    with pytest.raises(ValueError, match="no train text"):
        synthesis.plan_corpus(4, voices, {"one": ["Only one sentence here."]}, seed=1, test_fraction=0.5)


@requires_engine
def test_manifest_lines_describe_readable_16k_audio(corpus):
    records = read_jsonl(corpus / "manifest.jsonl")
    assert len(records) == UTTERANCES
    for record in records:
        assert {"audio", "text", "duration", "speaker", "split"} <= record.keys()
        assert record["split"] in ("train", "test")
        info = soundfile.info(str(corpus / record["audio"]))
        assert info.samplerate == 16_000 and info.channels == 1
        assert info.duration == pytest.approx(record["duration"], abs=1e-3)
        assert record["duration"] > 0.5


@requires_engine
def test_splits_are_disjoint_by_voice_and_sentence(corpus):
    train = read_jsonl(corpus / "train.jsonl")
    test = read_jsonl(corpus / "test.jsonl")
    assert len(test) == UTTERANCES // 4 and len(train) + len(test) == UTTERANCES
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in test}
    assert not {r["text"] for r in train} & {r["text"] for r in test}


@requires_engine
def test_same_seed_gives_the_same_assignment(corpus):
    loaded = texts.load_texts()
    plan = synthesis.plan_corpus(
        UTTERANCES, synthesis.corpus_voices(), loaded, seed=3, test_fraction=0.25, weights=texts.source_weights(loaded)
    )
    records = read_jsonl(corpus / "manifest.jsonl")
    assert [(r["text"], r["speaker"], r["rate"], r["pitch"]) for r in records] == [
        (u.text, u.voice.id, u.rate, u.pitch) for u in plan
    ]


@requires_engine
def test_word_timings_are_ordered_and_inside_the_audio(corpus):
    for record in read_jsonl(corpus / "manifest.jsonl"):
        words = record.get("words")
        if words is None:
            continue
        assert [w["word"] for w in words] == [w.strip(",.;:?!'") for w in record["text"].split()]
        assert all(0 <= w["start"] < w["end"] <= record["duration"] + 1e-3 for w in words)
        assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))


@requires_engine
def test_rerun_only_redoes_what_is_missing(corpus):
    records = read_jsonl(corpus / "manifest.jsonl")
    removed = corpus / records[4]["audio"]
    removed.unlink()
    (corpus / "manifest.jsonl").write_text("")
    kept = {
        r["audio"]: (corpus / r["audio"]).stat().st_mtime_ns for r in records if corpus / r["audio"] != removed
    }

    summary = build_corpus(corpus, UTTERANCES, seed=3, workers=1, test_fraction=0.25, progress=False)

    assert sum(summary.utterances.values()) == UTTERANCES
    assert removed.exists()
    assert {audio: (corpus / audio).stat().st_mtime_ns for audio in kept} == kept
    assert [r["audio"] for r in read_jsonl(corpus / "manifest.jsonl")] == [r["audio"] for r in records]


@requires_engine
def test_voices_json_says_how_every_speaker_was_made(corpus):
    described = json.loads((corpus / "voices.json").read_text())
    assert {r["speaker"] for r in read_jsonl(corpus / "manifest.jsonl")} <= described.keys()
    for voice in synthesis.corpus_voices():
        assert described[voice.id] == {
            "engine": voice.engine, "name": voice.name, "weight": voice.weight, "settings": dict(voice.settings)
        }


def test_an_engines_test_voices_do_not_depend_on_the_other_engines_installed():
    alpha = [Voice("alpha", f"a{i}") for i in range(7)]
    beta = [Voice("beta", f"b{i}") for i in range(9)]
    for seed in range(5):
        together = synthesis.split_voices(alpha + beta, 0.3, seed)["test"]
        assert [v for v in together if v.engine == "beta"] == synthesis.split_voices(beta, 0.3, seed)["test"]


def test_corpus_voices_name_unknown_and_missing_engines(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown TTS engines \['nope'\]"):
        synthesis.corpus_voices(["espeak", "nope"])
    monkeypatch.setattr(engines.PicoEngine, "is_installed", classmethod(lambda cls: False))
    with pytest.raises(ValueError, match=r"\['pico'\] are not installed"):
        synthesis.corpus_voices(["pico"])


POOLS = {
    "dialogue": [f"Could you call {name} back this evening?" for name in ("Anna", "Ben", "Carla", "Dan", "Eve")],
    "commands": [f"Turn the {thing} off now." for thing in ("light", "radio", "heater", "fan", "oven")],
}
requires_espeak = pytest.mark.skipif(not engines.EspeakEngine.is_installed(), reason="espeak-ng not installed")


@requires_espeak
def test_a_part_is_its_range_of_the_plan_from_the_given_texts_and_engines(tmp_path):
    summary = build_corpus(tmp_path / "part", 6, seed=2, workers=1, test_fraction=0.5, progress=False,
                           engines=["espeak"], texts=POOLS, start=4)
    plan = synthesis.plan_corpus(6, synthesis.corpus_voices(["espeak"]), POOLS, 2, 0.5, texts.source_weights(POOLS))
    records = read_jsonl(tmp_path / "part" / "manifest.jsonl")
    assert summary.failed == 0
    assert [(r["audio"], r["text"], r["speaker"]) for r in records] == [
        (f"audio/{u.id}.flac", u.text, u.voice.id) for u in plan[4:]
    ]
    with pytest.raises(ValueError, match="start 6"):
        build_corpus(tmp_path / "part", 6, workers=1, progress=False, engines=["espeak"], texts=POOLS, start=6)


@requires_espeak
def test_one_split_alone_is_that_split_of_the_same_plan(tmp_path):
    common = dict(seed=2, workers=1, test_fraction=0.5, progress=False, engines=["espeak"], texts=POOLS)
    summary = build_corpus(tmp_path / "test", 6, split="test", **common)
    plan = synthesis.plan_corpus(6, synthesis.corpus_voices(["espeak"]), POOLS, 2, 0.5, texts.source_weights(POOLS))
    records = read_jsonl(tmp_path / "test" / "manifest.jsonl")
    assert summary.utterances == {"train": 0, "test": 3}
    assert [r["audio"] for r in records] == [f"audio/{u.id}.flac" for u in plan if u.split == "test"]
    with pytest.raises(ValueError, match="split must be one of"):
        build_corpus(tmp_path / "dev", 6, split="dev", **common)


@requires_espeak
def test_an_opus_corpus_stores_wideband_ogg_clips_that_train_like_flac_ones(tmp_path):
    common = dict(seed=2, workers=1, test_fraction=0.5, progress=False, engines=["espeak"], texts=POOLS)
    build_corpus(tmp_path / "flac", 4, **common)
    summary = build_corpus(tmp_path / "opus", 4, audio_format="opus", **common)
    flac, opus = (read_manifest(tmp_path / name / "manifest.jsonl") for name in ("flac", "opus"))
    assert summary.failed == 0 and [u.text for u in opus] == [u.text for u in flac]
    assert all(u.audio.suffix == ".ogg" and soundfile.info(u.audio).format == "OGG" for u in opus)
    assert sum(u.audio.stat().st_size for u in opus) < sum(u.audio.stat().st_size for u in flac) / 2
    for flac_clip, opus_clip in zip(flac, opus):
        # Opus keeps the clip's length within its frame padding, and its energy.
        flac_audio, opus_audio = load_audio(flac_clip.audio), load_audio(opus_clip.audio)
        assert abs(opus_audio.size - flac_audio.size) <= 0.02 * 16000
        assert np.std(opus_audio) == pytest.approx(np.std(flac_audio), rel=0.2)
    resumed = build_corpus(tmp_path / "opus", 4, audio_format="opus", **common)
    assert resumed.utterances == summary.utterances
    with pytest.raises(ValueError, match="audio_format"):
        build_corpus(tmp_path / "other", 4, audio_format="mp3", **common)


def make_part(directory: Path, indices: range, speaker: str) -> Path:
    """A corpus part as build_corpus leaves it: short clips, manifest.jsonl, voices.json."""
    records = []
    for index in indices:
        clip = f"audio/{index:06d}-{speaker}.flac"
        write_audio(directory / clip, np.full(1600, 0.1, dtype=np.float32))
        records.append({"audio": clip, "text": f"Clip {index}.", "duration": 0.1, "speaker": speaker,
                        "split": "test" if index % 3 == 0 else "train"})
    (directory / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "voices.json").write_text(json.dumps({speaker: {"engine": "fake", "name": speaker}}))
    return directory


def test_merged_parts_train_from_one_manifest_that_moves_with_them(tmp_path):
    first = make_part(tmp_path / "corpus" / "gpu", range(0, 4), "kokoro-a")
    second = make_part(tmp_path / "elsewhere" / "cpu", range(4, 9), "pico-b")
    counts = synthesis.merge_corpora(tmp_path / "corpus" / "merged", [first, second])
    assert counts == {"train": 6, "test": 3}
    shutil.move(tmp_path, tmp_path.with_name(tmp_path.name + "-moved"))
    merged = tmp_path.with_name(tmp_path.name + "-moved") / "corpus" / "merged"
    train = read_training_manifest(merged / "train.jsonl")
    assert [u.text for u in train] == [f"Clip {i}." for i in (1, 2, 4, 5, 7, 8)]
    assert all(u.audio.is_file() for u in train + read_manifest(merged / "test.jsonl"))
    assert json.loads((merged / "voices.json").read_text()).keys() == {"kokoro-a", "pico-b"}


def test_parts_built_from_the_same_range_of_the_plan_are_not_merged(tmp_path):
    first = make_part(tmp_path / "a", range(0, 4), "kokoro-a")
    second = make_part(tmp_path / "b", range(3, 6), "pico-b")
    with pytest.raises(ValueError, match="both utterance 000003"):
        synthesis.merge_corpora(tmp_path / "merged", [first, second])
    assert not (tmp_path / "merged" / "train.jsonl").exists()


def test_workers_take_the_visible_gpus_in_turn(monkeypatch):
    import multiprocessing
    import os

    started = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(5):
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        synthesis.pin_worker_to_gpu(started, ["2", "5"])
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "5", "2", "5", "2"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    synthesis.pin_worker_to_gpu(started, [])  # no GPU: the worker's environment is left alone
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(synthesis.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 7")
    assert synthesis.visible_gpus() == ["3", "7"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert synthesis.visible_gpus() == ["0", "1"]
    monkeypatch.setattr(synthesis.torch.cuda, "device_count", lambda: 0)
    assert synthesis.visible_gpus() == []


def test_corpus_statistics_count_voices_utterances_and_hours_per_engine_and_split(tmp_path):
    first = make_part(tmp_path / "gpu", range(0, 4), "kokoro-a")
    second = make_part(tmp_path / "cpu", range(4, 9), "pico-b")
    (second / "voices.json").write_text(json.dumps({"pico-b": {"engine": "pico", "name": "b"}}))
    synthesis.merge_corpora(tmp_path / "merged", [first, second])
    statistics = synthesis.corpus_statistics(tmp_path / "merged")
    assert statistics["fake"] == {"all": {"voices": 1, "utterances": 4, "hours": 0.0},
                                  "test": {"voices": 1, "utterances": 2, "hours": 0.0},
                                  "train": {"voices": 1, "utterances": 2, "hours": 0.0}}
    assert statistics["pico"]["test"]["utterances"] == 1 and statistics["pico"]["train"]["utterances"] == 4
    assert statistics["all"]["all"] == {"voices": 2, "utterances": 9, "hours": round(9 * 0.1 / 3600, 3)}


def test_corpus_statistics_name_a_speaker_missing_from_voices_json(tmp_path):
    part = make_part(tmp_path / "part", range(0, 2), "kokoro-a")
    (part / "voices.json").write_text(json.dumps({"other": {"engine": "fake", "name": "other"}}))
    with pytest.raises(ValueError, match="kokoro-a"):
        synthesis.corpus_statistics(part)
