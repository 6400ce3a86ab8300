import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import soundfile
import torch
import typer
from conftest import make_clips
from typer.testing import CliRunner

import audiograft
from audiograft import cli
from audiograft.audio.io import load_audio
from audiograft.bench.config import BenchConfig
from audiograft.cli import app
from audiograft.corpora import texts
from audiograft.corpora.engines import EspeakEngine
from audiograft.corpora.synthesis import corpus_voices, plan_corpus
from audiograft.corpora.texts import source_weights
from audiograft.inference.options import DEFAULT_CPU_THREADS, TranscriptionOptions
from audiograft.inference.transcript import OUTPUT_FORMATS
from audiograft.modeling.config import EncoderContext, GraftConfig, ProjectorType
from audiograft.serving.settings import ServerSettings

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



def test_transcribe_names_a_blip_and_still_transcribes_the_good_file(base_models, tmp_path):
    # A 20 ms WAV once passed the loader and failed the whole batch inside the voice detector: the good file was lost.
    graft_dir = tmp_path / "graft"
    runner.invoke(app, ["init", str(graft_dir), "--encoder", str(base_models["whisper"]), "--llm", str(base_models["qwen2"])])
    good, blip = tmp_path / "good.flac", tmp_path / "blip.wav"
    soundfile.write(good, load_audio(Path(__file__).parents[1] / "examples" / "jfk.flac")[: 16000 * 3], 16000)
    soundfile.write(blip, make_clips([0.02])[0], 16000)
    result = runner.invoke(app, ["transcribe", str(good), str(blip), "--model", str(graft_dir)])
    assert result.exit_code == 1
    assert "blip.wav: 20 ms of audio is too short" in result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line] == [str(good)]
    assert "Traceback" not in result.output

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


def test_data_dev_lists_each_source_and_fetches_into_the_cache(tmp_path, monkeypatch):
    from audiograft.corpora import devset

    def fake_sources(examples_dir):
        def fetch(cache):
            (cache / "fetched").write_text("yes")
            return cache

        def read(root, out_dir):
            audio = devset.write_clip(out_dir, "fake", "one", make_clips([1.5])[0])
            return [devset.Utterance(audio, "two words", 1.5)]

        return [devset.DevSource("fake", "a test", "CC0", fetch, read)]

    monkeypatch.setattr(devset, "dev_sources", fake_sources)
    result = runner.invoke(app, ["data", "dev", str(tmp_path / "dev"), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "fake: 1 clips, 1.5 s, 2 words" in output and "1 utterances, 1.5 s" in output
    assert (tmp_path / "cache" / "fetched").read_text() == "yes"
    assert "licence: CC0" in (tmp_path / "dev" / "LICENCES").read_text()


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


def command(name: str) -> typer.core.TyperCommand:
    return typer.main.get_command(app).commands[name]


def parameter(command_name: str, name: str):
    return next(p for p in command(command_name).params if p.name == name)


def make_graft(base_models, graft_dir: Path) -> Path:
    result = runner.invoke(app, ["init", str(graft_dir), "--encoder", str(base_models["whisper"]),
                                 "--llm", str(base_models["qwen2"])])
    assert result.exit_code == 0, result.output
    return graft_dir


def run_audiograft(*arguments: str) -> subprocess.CompletedProcess:
    """`python -m audiograft ...` in a fresh process, as a user runs it, without any quieting of our own."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    env["PYTHONPATH"] = os.pathsep.join([SOURCE_ROOT, env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "audiograft", *arguments], capture_output=True, text=True, env=env,
                          timeout=600)


SOURCE_ROOT = str(Path(audiograft.__file__).parents[1])


def test_help_lists_the_commands_without_importing_torch():
    probe = ("import runpy, sys\nsys.argv = ['audiograft', '--help']\n"
             "try:\n    runpy.run_module('audiograft', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('heavy:', [m for m in ('torch', 'transformers', 'peft', 'fastapi') if m in sys.modules])")
    env = dict(os.environ, PYTHONPATH=SOURCE_ROOT, COLUMNS="200")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    assert all(name in result.stdout for name in ("transcribe", "train", "eval", "serve", "bench", "data"))


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"audiograft {audiograft.__version__}"


def test_choices_come_from_the_library_and_are_checked():
    assert [member.value for member in cli.OutputFormat] == list(OUTPUT_FORMATS)
    assert [member.value for member in cli.Projector] == list(get_args(ProjectorType))
    assert [member.value for member in cli.EncoderContextChoice] == list(get_args(EncoderContext))
    result = runner.invoke(app, ["init", "out", "--preset", "small", "--projector", "conv"])
    assert result.exit_code == 2 and "--projector" in result.output and not Path("out").exists()
    assert all(name in result.output for name in get_args(ProjectorType))
    result = runner.invoke(app, ["eval", "m.jsonl", "--baseline", "wav2vec"])
    assert result.exit_code == 2 and "--baseline" in result.output


def test_defaults_come_from_the_option_dataclasses():
    assert parameter("transcribe", "batch_size").default == TranscriptionOptions.batch_size
    assert parameter("transcribe", "static_cache").default == TranscriptionOptions.static_cache
    assert parameter("eval", "batch_size").default == TranscriptionOptions.batch_size
    assert parameter("init", "downsample").default == GraftConfig.downsample
    assert parameter("serve", "max_queue_depth").default == ServerSettings.max_queue_depth
    assert parameter("serve", "batch_wait_ms").default == ServerSettings.batch_wait_seconds * 1000
    assert parameter("serve", "request_timeout").default == ServerSettings.request_timeout_seconds
    assert parameter("bench", "repeats").default == BenchConfig.repeats
    assert parameter("bench", "rows").default == ",".join(BenchConfig.rows)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_model_directory_is_one_line_and_v_shows_the_traceback(tmp_path):
    clip = tmp_path / "a.wav"
    soundfile.write(clip, make_clips([0.5])[0], 16000)
    line = one_error_line(runner.invoke(app, ["transcribe", str(clip), "--model", "/nonexistent"]))
    assert line.startswith("error: ") and "/nonexistent" in line and "-v" in line
    result = runner.invoke(app, ["-v", "transcribe", str(clip), "--model", "/nonexistent"])
    assert isinstance(result.exception, FileNotFoundError)


def test_cuda_without_cuda_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for arguments in (["transcribe", str(tmp_path / "a.wav")], ["eval", str(tmp_path / "m.jsonl")]):
        line = one_error_line(runner.invoke(app, [*arguments, "--device", "cuda"]))
        assert "--device cuda" in line and "--device cpu" in line


def test_every_device_option_is_named_device():
    # typer 0.27 (the GPU image's) named an option declared with only a metavar after the metavar: "--DEVICE".
    command = typer.main.get_command(app)
    for name in ("transcribe", "eval", "serve", "bench"):
        options = {option for param in command.commands[name].params for option in param.opts}
        assert "--device" in options and "--DEVICE" not in options, name


def test_a_bad_manifest_line_in_train_is_one_line(base_models, tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "fine", "duration": 1.0}\n{"audio": "b.wav"\n')
    config = tmp_path / "stage.yaml"
    config.write_text(f"output_dir: {tmp_path / 'run'}\ntrain_manifest: {manifest}\n"
                      f"model: {{encoder: {base_models['whisper']}, llm: {base_models['qwen2']}}}\n")
    result = run_audiograft("train", str(config))  # a fresh process: the base models load first, quietly
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{manifest}:2" in result.stderr


def test_a_missing_training_config_is_one_line(tmp_path):
    line = one_error_line(runner.invoke(app, ["train", str(tmp_path / "missing.yaml")]))
    assert "missing.yaml" in line


def test_transcribe_prints_no_warnings_on_a_normal_run(base_models, tmp_path):
    graft_dir = make_graft(base_models, tmp_path / "graft")
    clip = tmp_path / "a.wav"
    soundfile.write(clip, make_clips([1.0])[0], 16000)
    result = run_audiograft("transcribe", str(clip), "--model", str(graft_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(clip))
    assert result.stderr.strip() == ""


def test_threads_sets_torch_threads_with_a_small_default(base_models, tmp_path):
    assert 1 <= parameter("transcribe", "threads").default == DEFAULT_CPU_THREADS <= 4
    assert all(parameter(name, "threads").default == DEFAULT_CPU_THREADS for name in ("eval", "serve"))
    graft_dir = make_graft(base_models, tmp_path / "graft")
    clip = tmp_path / "a.wav"
    soundfile.write(clip, make_clips([0.5])[0], 16000)
    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["transcribe", str(clip), "--model", str(graft_dir), "--threads", "1"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_serve_reads_the_api_key_from_the_environment(monkeypatch):
    started = {}
    monkeypatch.setattr("audiograft.serving.server.serve", lambda model, **kwargs: started.update(kwargs))
    monkeypatch.setenv("AUDIOGRAFT_API_KEY", "from-env")
    result = runner.invoke(app, ["serve", "--max-batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert started["settings"].api_key == "from-env" and started["settings"].max_batch_size == 2


def test_data_texts_writes_only_the_sources_asked_for_and_names_an_unknown_one(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(texts, "load_texts", lambda sources: asked.append([s.name for s in sources]) or {"kjv": ["A."]})
    assert runner.invoke(app, ["data", "texts", str(tmp_path / "a.json.gz"), "--sources", "scrambled,kjv"]).exit_code == 0
    assert runner.invoke(app, ["data", "texts", str(tmp_path / "b.json.gz")]).exit_code == 0
    assert asked == [["scrambled", "kjv"], [s.name for s in texts.DEFAULT_SOURCES]]
    refused = runner.invoke(app, ["data", "texts", str(tmp_path / "c.json.gz"), "--sources", "kjv,novels"])
    assert refused.exit_code != 0 and "novels" in refused.output and not (tmp_path / "c.json.gz").exists()


def test_data_texts_held_out_drops_texts_sharing_a_run_of_words_with_the_manifests(tmp_path, monkeypatch):
    monkeypatch.setattr(texts, "load_texts", lambda sources: {
        "fortunes": ["He said go forward ten meters and stop.", "Life is what happens while you plan."]})
    (tmp_path / "clip.wav").write_bytes(b"")
    (tmp_path / "dev.jsonl").write_text(json.dumps({"audio": "clip.wav", "text": "go forward ten meters and",
                                                    "duration": 1.0}) + "\n")
    result = runner.invoke(app, ["data", "texts", str(tmp_path / "t.json.gz"), "--sources", "fortunes",
                                 "--held-out", str(tmp_path / "dev.jsonl")])
    assert result.exit_code == 0, result.output
    assert texts.read_text_pools(tmp_path / "t.json.gz") == {"fortunes": ["Life is what happens while you plan."]}


@pytest.mark.skipif(not EspeakEngine.is_installed(), reason="espeak-ng not installed")
def test_data_synth_parts_from_written_text_pools_merge_into_one_corpus(tmp_path, monkeypatch):
    pools = {"dialogue": [f"Could you call {name} back tonight?" for name in ("Anna", "Ben", "Carla", "Dan")],
             "commands": [f"Turn the {thing} off now." for thing in ("light", "radio", "heater", "fan")]}
    monkeypatch.setattr(texts, "load_texts", lambda sources: pools)
    written = runner.invoke(app, ["data", "texts", str(tmp_path / "texts.json.gz")])
    assert written.exit_code == 0, written.output
    monkeypatch.setattr(texts, "load_texts", lambda: pytest.fail("--texts must be planned from, not the sources"))
    common = ["--engines", "espeak", "--texts", str(tmp_path / "texts.json.gz"), "--workers", "1",
              "--test-fraction", "0.5"]
    for part, options in (("a", ["--utterances", "2"]),
                          ("b", ["--utterances", "4", "--start", "2", "--audio-format", "opus"])):
        built = runner.invoke(app, ["data", "synth", str(tmp_path / part), *options, *common])
        assert built.exit_code == 0, built.output
    merged = runner.invoke(app, ["data", "merge", str(tmp_path / "all"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert merged.exit_code == 0, merged.output
    records = [json.loads(line) for line in (tmp_path / "all" / "manifest.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records] == [u.text for u in plan_corpus(
        4, corpus_voices(["espeak"]), pools, 0, 0.5, source_weights(pools))]
    assert all(r["speaker"].startswith("espeak-") for r in records)
    assert [Path(r["audio"]).suffix for r in records] == [".flac", ".flac", ".ogg", ".ogg"]
    stats = runner.invoke(app, ["data", "stats", str(tmp_path / "all"), "--json", str(tmp_path / "stats.json")])
    assert stats.exit_code == 0, stats.output
    assert "espeak" in stats.output
    assert json.loads((tmp_path / "stats.json").read_text())["espeak"]["all"]["utterances"] == 4
    held_out = runner.invoke(app, ["data", "synth", str(tmp_path / "t"), "--utterances", "4", "--split", "test", *common])
    assert held_out.exit_code == 0, held_out.output
    assert (tmp_path / "t" / "manifest.jsonl").read_text() == (tmp_path / "t" / "test.jsonl").read_text() != ""
    assert [json.loads(line)["text"] for line in (tmp_path / "t" / "test.jsonl").read_text().splitlines()] == [
        r["text"] for r in records if r["split"] == "test"]


def test_data_synth_names_engines_it_does_not_know():
    result = runner.invoke(app, ["data", "synth", "unused", "--utterances", "2", "--engines", "espeak,nope"])
    assert result.exit_code == 2 and "unknown TTS engines ['nope']" in result.output
