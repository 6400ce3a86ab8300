"""The `audiograft` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from audiograft.config import DEFAULT_INSTRUCTION, GraftConfig

app = typer.Typer(help="Graft a pretrained audio encoder onto a pretrained LLM.", no_args_is_help=True)
data_app = typer.Typer(help="Build speech datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


@app.command()
def setup(force: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False) -> None:
    """Convert the built-in small preset's pretrained parts (whisper-base, SmolLM2-135M) into the local cache."""
    from audiograft.pretrained import prepare_small_preset

    preset = prepare_small_preset(force=force)
    console.print(f"encoder: {preset.encoder}\nllm:     {preset.llm}")


@app.command()
def init(
    output: Annotated[Path, typer.Argument(help="Directory to write the new (untrained) graft to.")],
    encoder: Annotated[str | None, typer.Option(help="Whisper or Qwen2-Audio checkpoint: hub id or directory.")] = None,
    llm: Annotated[str | None, typer.Option(help="Causal LM or Qwen2-VL checkpoint: hub id or directory.")] = None,
    preset: Annotated[str | None, typer.Option(help="'small': whisper-base + SmolLM2-135M-Instruct.")] = None,
    projector: Annotated[str, typer.Option(help="linear | pool | stack")] = "pool",
    downsample: Annotated[int, typer.Option(help="Encoder frames per LLM token (pool, stack).")] = 4,
    encoder_context: Annotated[str, typer.Option(help="trim | full")] = "trim",
) -> None:
    """Create a graft with a fresh projector on top of two base models."""
    from audiograft.model import GraftModel

    if preset == "small":
        encoder, llm = encoder or "audiograft:whisper-base", llm or "audiograft:smollm2-135m-instruct"
    elif preset is not None:
        raise typer.BadParameter(f"unknown preset {preset!r}; the built-in one is 'small'", param_hint="--preset")
    if encoder is None or llm is None:
        raise typer.BadParameter("name both --encoder and --llm, or --preset small")
    config = GraftConfig(
        encoder=encoder, llm=llm, projector=projector, downsample=downsample, encoder_context=encoder_context
    )
    GraftModel.from_config(config).save_pretrained(output)
    console.print(f"wrote {output}")


@app.command()
def transcribe(
    audio: Annotated[list[Path], typer.Argument(help="Audio files (any format libsndfile reads).")],
    model: Annotated[str, typer.Option(help="A saved graft directory, or 'default' (built-in).")] = "default",
    instruction: Annotated[str, typer.Option(help="What to do with the audio.")] = DEFAULT_INSTRUCTION,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Print one line per file: its name and the model's answer. Bad files are reported, the rest still run."""
    from audiograft.audio import AudioError, load_audio
    from audiograft.model import GraftModel

    graft = GraftModel.from_pretrained(model, device=device)
    loaded = []
    failures = 0
    for path in audio:
        try:
            loaded.append((path, load_audio(path, max_seconds=graft.encoder.max_seconds)))
        except AudioError as error:
            failures += 1
            typer.echo(f"error: {error}", err=True)
    for start in range(0, len(loaded), batch_size):
        chunk = loaded[start : start + batch_size]
        texts = graft.transcribe([waveform for _, waveform in chunk], instruction)
        for (path, _), text in zip(chunk, texts):
            typer.echo(f"{path}\t{' '.join(text.split())}")
    if failures:
        raise typer.Exit(code=1)


@app.command()
def merge(
    model: Annotated[Path, typer.Argument(help="A saved graft directory (adapter-only).")],
    output: Annotated[Path, typer.Argument(help="Directory for the standalone merged graft.")],
) -> None:
    """Merge LoRA into the LLM and copy the base weights in: one self-contained directory for deployment."""
    from audiograft.model import GraftModel

    GraftModel.from_pretrained(model).merge(output)
    console.print(f"wrote {output}")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see configs/.")],
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in output_dir.")] = False,
) -> None:
    """Train one stage (projector, or projector + LoRA). Multi-GPU: `accelerate launch -m audiograft train ...`."""
    from audiograft.training import TrainConfig
    from audiograft.training import train as run_training

    final = run_training(TrainConfig.from_yaml(config), resume=resume)
    console.print(f"wrote {final}")


@app.command()
def plot(
    run_dir: Annotated[Path, typer.Argument(help="A training output directory (holds log.jsonl).")],
    output: Annotated[Path | None, typer.Option(help="PNG path (default RUN_DIR/curves.png).")] = None,
) -> None:
    """Draw a run's loss, learning rate, gradient norm, throughput and dev WER to PNG."""
    from audiograft.training import plot_run

    console.print(f"wrote {plot_run(run_dir, output)}")


@app.command("eval")
def evaluate(
    manifest: Annotated[Path, typer.Argument(help="JSONL manifest of the utterances to score.")],
    model: Annotated[str, typer.Option(help="A saved graft directory, or 'default' (built-in).")] = "default",
    baseline: Annotated[str | None, typer.Option(help="'whisper': the encoder's own Whisper, decoder included.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the machine-readable result here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML audit report here.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
) -> None:
    """Corpus WER/CER (Whisper-normalised), speed, failure rates; optionally beside plain Whisper, with a report."""
    from audiograft.data import read_manifest
    from audiograft.evaluation import WhisperBaseline, evaluate_model, run_system, score
    from audiograft.model import GraftModel
    from audiograft.pretrained import resolve_base
    from audiograft.report import write_report

    utterances = read_manifest(manifest)[:limit]
    graft = GraftModel.from_pretrained(model, device=device)
    result = evaluate_model(graft, utterances, batch_size, name=model)
    if baseline == "whisper":
        whisper = WhisperBaseline(resolve_base(graft.config.encoder), device=device)
        hypotheses, wall_seconds = run_system(
            whisper.transcribe, utterances, batch_size, "whisper baseline", max_seconds=graft.encoder.max_seconds
        )
        result.baseline = score(hypotheses, wall_seconds=wall_seconds, model=f"whisper ({whisper.name})",
                                device=device, batch_size=batch_size)
    elif baseline is not None:
        raise typer.BadParameter(f"unknown baseline {baseline!r}; the one offered is 'whisper'", param_hint="--baseline")
    if json_path is not None:
        json_path.write_text(result.to_json())
    if report is not None:
        write_report(result, report)
    systems = [result] + ([result.baseline] if result.baseline else [])
    for system in systems:
        typer.echo(
            f"{system.model}: WER {100 * system.wer:.2f}%  CER {100 * system.cer:.2f}%  RTFx {system.rtfx:.1f}  "
            f"n={len(system.utterances)} skipped={len(system.skipped)}  hallucination {system.failures.hallucination_rate:.3f}"
            f"  loop {system.failures.loop_rate:.3f}  empty {system.failures.empty_rate:.3f}"
        )


@data_app.command("synth")
def synth(
    output: Annotated[Path, typer.Argument(help="Corpus directory (audio/, train.jsonl, test.jsonl).")],
    utterances: Annotated[int, typer.Option(min=1, help="How many utterances in all.")],
    seed: Annotated[int, typer.Option(help="Same seed, same corpus.")] = 0,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel synthesis processes (default: all cores).")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of voices and sentences held out for test.")] = 0.1,
) -> None:
    """Synthesise a multi-voice English corpus, test voices and sentences held out; rerun to resume."""
    import os

    from audiograft.synthesis import build_corpus

    summary = build_corpus(output, utterances, seed=seed, workers=workers or os.cpu_count() or 1,
                           test_fraction=test_fraction)
    for split in sorted(summary.utterances):
        console.print(f"{split}: {summary.utterances[split]} utterances, {summary.hours[split]:.2f} h, "
                      f"{len(summary.voices[split])} voices")
    console.print(f"{summary.wall_seconds:.0f} s; failed: {summary.failed}")


@data_app.command("dev")
def dev(
    output: Annotated[Path, typer.Argument(help="Directory for dev.jsonl and its audio.")],
    examples: Annotated[Path, typer.Option(help="Directory holding jfk.flac.")] = Path("examples"),
) -> None:
    """Real human speech for evaluation (LibriVox sentences from pocketsphinx's sdist, the JFK sample)."""
    from audiograft.data import read_manifest
    from audiograft.devset import build_dev_manifest

    manifest = build_dev_manifest(output, examples)
    utterances = read_manifest(manifest)
    console.print(f"wrote {manifest}: {len(utterances)} utterances, {sum(u.duration for u in utterances):.1f} s")
