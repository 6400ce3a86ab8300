"""benchmarks/calibration_sets.py: each candidate calibrator's ECE on results already scored."""

import json

import pytest
from conftest import load_script

from audiograft.evaluation.metrics import expected_calibration_error
from audiograft.inference.alignment import ConfidenceCalibrator


def test_raw_confidence_undoes_the_calibrator_the_results_went_through():
    raw_confidence = load_script("benchmarks/calibration_sets.py").raw_confidence
    calibrator = ConfidenceCalibrator(slope=0.8, intercept=0.3)
    for raw in (0.05, 0.5, 0.93):
        assert raw_confidence(calibrator(raw), calibrator) == pytest.approx(raw)
    assert raw_confidence(0.7, None) == 0.7


def test_results_of_a_model_without_a_calibrator_are_read_as_raw(tmp_path, monkeypatch):
    # The shipped default has no calibrator: its results carry raw confidences, and the script must not need one.
    scored_with, candidate = tmp_path / "default", tmp_path / "calibrated"
    scored_with.mkdir()
    candidate.mkdir()
    calibrator = ConfidenceCalibrator(slope=0.5, intercept=-0.2)
    calibrator.save(candidate)
    words = [{"confidence": c, "correct": ok} for c, ok in [(0.9, True), (0.8, False), (0.3, False), (0.6, True)]]
    result = tmp_path / "en.json"
    result.write_text(json.dumps({"utterances": [{"words": words}, {"words": None}]}))
    output = tmp_path / "report.json"
    monkeypatch.setattr("sys.argv", ["calibration_sets.py", "--scored-with", str(scored_with), "--calibrators",
                                     f"union={candidate}", "--results", f"en={result}", "--output", str(output)])
    load_script("benchmarks/calibration_sets.py").main()
    confidences, correct = [w["confidence"] for w in words], [w["correct"] for w in words]
    assert json.loads(output.read_text()) == {"en": {
        "words": 4, "raw": pytest.approx(expected_calibration_error(confidences, correct)),
        "union": pytest.approx(expected_calibration_error([calibrator(c) for c in confidences], correct))}}


def test_the_interval_holds_zero_for_no_change_and_is_above_it_for_a_calibrator_that_spoils_calibrated_words():
    ece_change_interval = load_script("benchmarks/calibration_sets.py").ece_change_interval
    # Thirty clips whose words are right as often as their confidence says: 0.9 right 9 times in 10, 0.5 half.
    utterances = [[(0.9, index < 9) for index in range(10)] + [(0.5, index < 5) for index in range(10)]
                  for _ in range(30)]
    assert ece_change_interval(utterances, ConfidenceCalibrator(slope=1.0, intercept=0.0), 50) == (0.0, 0.0)
    low, high = ece_change_interval(utterances, ConfidenceCalibrator(slope=3.0, intercept=1.0), 50)
    assert 0 < low <= high
    assert ece_change_interval(utterances, ConfidenceCalibrator(slope=3.0, intercept=1.0), 50) == (low, high)
