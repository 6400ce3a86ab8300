"""`audiograft bench` on a tiny random graft on CPU: the rows, figures and JSON; FLOP counts at 7B scale."""

import json

import pytest
from typer.testing import CliRunner

from audiograft.bench.architectures import ARCHITECTURES
from audiograft.bench.harness import (
    ROWS,
    BenchConfig,
    FlopCounter,
    answer_tokens,
    run_bench,
    workload_durations,
    write_json,
)
from audiograft.cli import app


@pytest.fixture(scope="module")
def bench():
    config = BenchConfig(scale="tiny", device="cpu", rows=("seed", "fast", "cached"), workloads=("W30", "Wmix"),
                         tasks=("inference", "training"), seed_clips=2, train_clips=4, repeats=1, workload_clips=4)
    reported = []
    results = run_bench(config, report=reported.append)
    return results, reported


def test_every_workload_task_and_row_is_measured_once(bench):
    results, reported = bench
    triples = [(m["workload"], m["task"], m["row"]) for m in results["results"]]
    expected = [(w, "inference", r) for w in ("W30", "Wmix") for r in ("seed", "fast")]  # cached: training only
    expected += [(w, "training", r) for w in ("W30", "Wmix") for r in ("seed", "fast", "cached")]
    assert sorted(triples) == sorted(expected) and len(triples) == len(set(triples))
    assert [(m.workload, m.task, m.row) for m in reported] == triples


def test_figures_are_consistent(bench):
    results, _ = bench
    for m in results["results"]:
        assert m["wall_seconds"] > 0 and m["audio_seconds"] > 0 and m["model_tflop"] > 0
        assert m["rtfx"] == pytest.approx(m["audio_seconds"] / m["wall_seconds"])
        assert m["samples_per_s"] == pytest.approx(m["clips"] / m["wall_seconds"])
    inference = {(m["workload"], m["row"]): m for m in results["results"] if m["task"] == "inference"}
    assert inference["W30", "seed"]["clips"] == 2 and inference["W30", "fast"]["clips"] == 4
    assert inference["W30", "seed"]["audio_seconds"] == 60.0
    for workload in ("W30", "Wmix"):
        assert inference[workload, "seed"]["extra"]["audio_tokens_30s"] == 1500
        assert inference[workload, "fast"]["extra"]["audio_tokens_30s"] == 375


def test_speedups_are_over_the_seed_row(bench):
    results, _ = bench
    assert set(results["speedups"]) == {"W30/inference/fast", "Wmix/inference/fast", "W30/training/fast",
                                        "Wmix/training/fast", "W30/training/cached", "Wmix/training/cached"}
    by_key = {(m["workload"], m["task"], m["row"]): m for m in results["results"]}
    seed, fast = by_key["W30", "inference", "seed"], by_key["W30", "inference", "fast"]
    assert results["speedups"]["W30/inference/fast"] == pytest.approx(fast["samples_per_s"] / seed["samples_per_s"])


def test_results_round_trip_through_json(bench, tmp_path):
    results, _ = bench
    path = write_json(results, tmp_path / "deep" / "bench.json")
    loaded = json.loads(path.read_text())
    assert loaded["results"] == json.loads(json.dumps(results["results"]))
    assert loaded["scale"] == "tiny" and loaded["config"]["rows"] == ["seed", "fast", "cached"]


def test_answer_lengths_and_workloads():
    assert answer_tokens(30.0) == 90 and answer_tokens(1.0) == 8
    mix = workload_durations("Wmix")
    assert len(mix) == 512 and all(2.0 <= s <= 20.0 for s in mix) and len(set(mix)) > 400
    assert mix == workload_durations("Wmix")
    assert workload_durations("W30") == [30.0] * 256
    with pytest.raises(ValueError, match="unknown workload"):
        workload_durations("W60")


def test_flops_of_a_30s_clip_at_7b_scale():
    architecture = ARCHITECTURES["7b"]
    fast = FlopCounter(architecture, ROWS["fast"], lora_rank=64).inference(30.0, prompt_tokens=24)
    seed = FlopCounter(architecture, ROWS["seed"], lora_rank=64).inference(30.0, prompt_tokens=24)
    assert 8e12 <= fast <= 11e12  # the estimate: ~9.4 TFLOP
    assert seed >= 2 * fast


def test_cli_bench_writes_json_and_prints_a_table(tmp_path):
    path = tmp_path / "b.json"
    result = CliRunner().invoke(app, ["bench", "--scale", "tiny", "--device", "cpu", "--rows", "seed,fast",
                                      "--workloads", "W30", "--tasks", "inference", "--repeats", "1",
                                      "--seed-clips", "1", "--workload-clips", "2", "--json", str(path)])
    assert result.exit_code == 0, result.output
    assert path.is_file() and "RTFx" in result.output
    assert [(m["row"], m["clips"]) for m in json.loads(path.read_text())["results"]] == [("seed", 1), ("fast", 2)]
