import json
from pathlib import Path

import numpy as np
import soundfile
from conftest import make_clips
from typer.testing import CliRunner

from audiograft.audio.io import load_audio
from audiograft.cli import app
from audiograft.modeling.config import GraftConfig

runner = CliRunner()


def test_init_transcribe_and_merge(base_models, tmp_path):
    graft_dir = tmp_path / "graft"
    result = runner.invoke(app, ["init", str(graft_dir), "--encoder", str(base_models["whisper"]),
                                 "--llm", str(base_models["qwen2"]), "--projector", "stack", "--downsample", "2"])
    assert result.exit_code == 0, result.output
    assert GraftConfig.load(graft_dir).projector == "stack"

    good = tmp_path / "good.wav"
    soundfile.write(good, make_clips([1.0])[0], 16000)
    stereo_44k = tmp_path / "stereo.flac"
    soundfile.write(stereo_44k, make_clips([44100 / 16000 * 0.5])[0].reshape(-1, 2), 44100)
    result = runner.invoke(app, ["transcribe", str(good), str(tmp_path / "missing.wav"), str(stereo_44k),
                                 "--model", str(graft_dir), "--batch-size", "1"])
    assert result.exit_code == 1
    assert "missing.wav: no such file" in result.output
    lines = [line for line in result.stdout.splitlines() if "\t" in line]
    assert [line.split("\t")[0] for line in lines] == [str(good), str(stereo_44k)]

    result = runner.invoke(app, ["merge", str(graft_dir), str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "merged" / "llm" / "config.json").is_file()


def test_init_needs_both_bases():
    result = runner.invoke(app, ["init", "out", "--encoder", "openai/whisper-base"])
    assert result.exit_code != 0
    assert "--llm" in result.output


def test_transcribe_any_length_to_files_in_every_format(base_models, tmp_path):
    graft_dir = tmp_path / "graft"
    runner.invoke(app, ["init", str(graft_dir), "--encoder", str(base_models["whisper"]), "--llm", str(base_models["qwen2"])])
    speech = load_audio(Path(__file__).parents[1] / "examples" / "jfk.flac")
    long = tmp_path / "long.flac"
    soundfile.write(long, np.concatenate([speech, np.zeros(16000 * 5, np.float32), speech, speech]), 16000)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    for output_format, suffix in [("json", ".json"), ("srt", ".srt"), ("vtt", ".vtt"), ("text", ".txt")]:
        out = tmp_path / output_format
        result = runner.invoke(app, ["transcribe", str(long), str(silent), "--model", str(graft_dir), "--format",
                                     output_format, "--output-dir", str(out), "--task", "Summarise what is said."])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == sorted(["long" + suffix, "silent" + suffix])
    transcript = json.loads((tmp_path / "json" / "long.json").read_text())
    assert transcript["duration"] == 38.0 and len(transcript["segments"]) >= 2
    assert transcript["segments"][-1]["end"] > 30
    assert json.loads((tmp_path / "json" / "silent.json").read_text())["text"] == ""
    assert (tmp_path / "vtt" / "long.vtt").read_text().startswith("WEBVTT")

    result = runner.invoke(app, ["transcribe", str(silent), "--model", str(graft_dir), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["duration"] == 1.0
    result = runner.invoke(app, ["transcribe", str(silent), "--model", str(graft_dir), "--format", "docx"])
    assert result.exit_code != 0 and "--format" in result.output


def test_data_nonspeech_writes_a_manifest_of_empty_references(tmp_path):
    result = runner.invoke(app, ["data", "nonspeech", str(tmp_path / "ns")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "ns" / "nonspeech.jsonl").read_text().splitlines()]
    assert lines and all(line["text"] == "" for line in lines)


def test_eval_writes_json_and_report_and_survives_a_missing_file(base_models, tmp_path):
    from audiograft.manifest import Utterance, write_manifest

    graft_dir = tmp_path / "graft"
    runner.invoke(app, ["init", str(graft_dir), "--encoder", str(base_models["whisper"]), "--llm", str(base_models["qwen2"])])
    clips = make_clips([0.6, 0.9])
    utterances = []
    for index, clip in enumerate(clips):
        soundfile.write(tmp_path / f"{index}.wav", clip, 16000)
        utterances.append(Utterance(tmp_path / f"{index}.wav", "the fox", clip.size / 16000))
    utterances.append(Utterance(tmp_path / "missing.wav", "lost", 1.0))
    soundfile.write(tmp_path / "long.wav", make_clips([30.5])[0], 16000)
    utterances.append(Utterance(tmp_path / "long.wav", "longer than one window", 30.5))
    manifest = write_manifest(tmp_path / "m.jsonl", utterances)
    result = runner.invoke(app, ["eval", str(manifest), "--model", str(graft_dir), "--json", str(tmp_path / "r.json"),
                                 "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    values = json.loads((tmp_path / "r.json").read_text())
    assert values["n_utterances"] == 3 and len(values["skipped"]) == 1 and values["rtfx"] > 0
    assert {"wer", "cer", "hallucination_rate", "loop_rate", "empty_rate"} <= set(values)
    assert "<table" in (tmp_path / "r.html").read_text()
    assert "WER" in result.stdout
