import soundfile
from typer.testing import CliRunner

from audiograft.cli import app
from audiograft.config import GraftConfig
from conftest import make_clips

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
