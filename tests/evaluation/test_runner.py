"""Running systems over manifests: the graft through the Transcriber, Whisper as the baseline."""

from pathlib import Path

import numpy as np

from audiograft.evaluation.runner import WhisperBaseline, spoken_language
from audiograft.manifest import Utterance


def test_spoken_language_reads_the_records_language_field():
    assert spoken_language(Utterance(Path("a.flac"), "hola", 1.0, metadata={"language": "es"})) == "es"
    assert spoken_language(Utterance(Path("a.flac"), "hello", 1.0)) is None


def test_whisper_baseline_decodes_each_clip_in_its_records_language(tmp_path):
    import soundfile

    for name in ("a", "b", "c"):
        soundfile.write(tmp_path / f"{name}.flac", np.zeros(8000, np.float32), 16000)
    utterances = [
        Utterance(tmp_path / "a.flac", "hola", 0.5, metadata={"language": "es"}),
        Utterance(tmp_path / "b.flac", "hello", 0.5),
        Utterance(tmp_path / "c.flac", "bonjour", 0.5, metadata={"language": "fr"}),
    ]
    baseline = WhisperBaseline.__new__(WhisperBaseline)  # the grouping under test needs no model
    baseline.name, baseline.device = "fake", "cpu"
    greetings = {"es": "hola", "en": "hello", "fr": "salut"}
    baseline.transcribe = lambda waveforms, language: [greetings[language]] * len(waveforms)
    result = baseline.evaluate(utterances, batch_size=2)
    assert [(u.id, u.hypothesis, u.language) for u in result.utterances] == [
        ("0", "hola", "es"), ("1", "hello", None), ("2", "salut", "fr")]
    assert result.wer == 1 / 3 and result.model == "whisper (fake)"


def test_evaluate_model_runs_the_transcriber_on_clips_of_any_length(base_models, tmp_path):
    from pathlib import Path

    import numpy as np
    import soundfile
    import torch

    from audiograft.audio.io import load_audio
    from audiograft.evaluation.runner import evaluate_model
    from audiograft.manifest import Utterance
    from audiograft.modeling.config import GraftConfig
    from audiograft.modeling.model import GraftModel

    speech = load_audio(Path(__file__).parents[2] / "examples" / "jfk.flac")
    soundfile.write(tmp_path / "long.flac", np.concatenate([speech, speech, speech]), 16000)
    soundfile.write(tmp_path / "silence.flac", np.zeros(16000, np.float32), 16000)
    utterances = [Utterance(tmp_path / "long.flac", "ask not", 33.0), Utterance(tmp_path / "silence.flac", "", 1.0),
                  Utterance(tmp_path / "missing.flac", "lost", 1.0)]
    torch.manual_seed(0)
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    result = evaluate_model(model.eval(), utterances, batch_size=4, name="tiny")
    assert [s.audio for s in result.skipped] == [str(tmp_path / "missing.flac")]
    long, silence = result.utterances
    assert long.hypothesis and long.words and all(w.confidence is not None for w in long.words)
    assert silence.hypothesis == "" and not silence.hallucination


def test_fit_calibrator_fits_on_the_raw_confidences_of_the_models_own_transcripts(base_models, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import soundfile
    import torch
    from typer.testing import CliRunner

    from audiograft.cli import app
    from audiograft.evaluation import runner
    from audiograft.evaluation.metrics import ScoredWord
    from audiograft.inference.alignment import ConfidenceCalibrator
    from audiograft.manifest import write_manifest
    from audiograft.modeling.config import GraftConfig
    from audiograft.modeling.model import GraftModel

    torch.manual_seed(0)
    model = GraftModel.from_config(GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"])))
    directory = model.save_pretrained(tmp_path / "graft")
    ConfidenceCalibrator(slope=0.0, intercept=0.0).save(directory)  # a stale calibrator: every word 0.5
    soundfile.write(tmp_path / "a.flac", np.zeros(16000, np.float32), 16000)
    manifest = write_manifest(tmp_path / "m.jsonl", [Utterance(tmp_path / "a.flac", "the fox", 1.0)] * 4)
    seen = {}

    def fake_evaluate(model, utterances, batch_size=8, name="", calibrated=True):
        # Words the raw scores rank well but overstate: confident ones mostly right, doubtful ones mostly wrong.
        seen["calibrated"], seen["texts"] = calibrated, [u.text for u in utterances]
        words = [ScoredWord("w", None, None, confidence, correct) for confidence, correct in
                 [(0.9, True), (0.8, True), (0.85, False), (0.2, False), (0.3, False), (0.25, True)] * 5]
        return SimpleNamespace(utterances=[SimpleNamespace(words=words)])

    monkeypatch.setattr(runner, "evaluate_model", fake_evaluate)
    calibrator, raw_ece, calibrated_ece = runner.fit_calibrator(model, [], batch_size=2)
    assert seen["calibrated"] is False
    assert calibrator.slope > 0 and calibrated_ece < raw_ece
    other = write_manifest(tmp_path / "n.jsonl", [Utterance(tmp_path / "a.flac", "scrambled words", 1.0)] * 2)
    result = CliRunner().invoke(app, ["calibrate", str(directory), str(manifest), str(other), "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "calibrated" in result.output
    assert seen["texts"] == ["the fox"] * 4 + ["scrambled words"]  # the manifests joined, then the first five
    assert ConfidenceCalibrator.load(directory) == calibrator
