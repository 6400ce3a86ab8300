"""The `audiograft` command.

Commands import torch, transformers and peft (through the library) inside their bodies rather than here, for
start-up time only: `audiograft --help`, `--version` and mistakes in arguments then answer at once, not in 10-20 s.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.console import Console
from rich.logging import RichHandler
from typer.core import TyperGroup

import audiograft
from audiograft.audio.io import CLIP_FORMATS
from audiograft.bench.config import BenchConfig
from audiograft.inference.options import DEFAULT_CPU_THREADS, TranscriptionOptions
from audiograft.inference.transcript import OUTPUT_FORMATS
from audiograft.modeling.config import EncoderContext, GraftConfig, ProjectorType
from audiograft.serving.settings import API_KEY_VARIABLE, ServerSettings


class UserError(Exception):
    """A mistake in what the user asked for, found by the command itself; the message names it and the fix."""


# Exceptions that mean bad input rather than a bug: AudioError and ManifestError are ValueErrors, and so are
# the config checks (GraftConfig, TrainConfig); a missing file or model directory is an OSError.
USER_ERRORS = (UserError, ValueError, OSError)


class AudiograftGroup(TyperGroup):
    """Ends a known user mistake in one line, `error: ...`, with exit code 2; `-v` shows its traceback instead."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # output piped into `head`: click ends quietly
            raise
        except USER_ERRORS as error:
            if ctx.params.get("verbose"):
                raise
            message = " ".join(str(error).split()) or type(error).__name__
            typer.echo(f"error: {message} (-v shows the traceback)", err=True)
            raise typer.Exit(code=2) from None


def choices(name: str, values: Iterable[str]) -> type[enum.Enum]:
    """A choice type from the library's own list of values: typer lists its members in --help and checks them."""
    return enum.Enum(name, {value: value for value in values}, type=str)


OutputFormat = choices("OutputFormat", OUTPUT_FORMATS)
Projector = choices("Projector", get_args(ProjectorType))
EncoderContextChoice = choices("EncoderContextChoice", get_args(EncoderContext))
# The CLI's own shorthands: a preset names two built-in bases; a baseline is a system scored beside the graft.
PRESET_BASES = {"small": ("audiograft:whisper-base", "audiograft:smollm2-135m-instruct")}
Preset = choices("Preset", PRESET_BASES)
Baseline = choices("Baseline", ["whisper"])
ClipFormat = choices("ClipFormat", CLIP_FORMATS)

ModelOption = Annotated[str, typer.Option(metavar="DIR", help="A saved graft directory, or 'default' (built-in).")]
CtcCandidatesOption = Annotated[int, typer.Option(min=0, help=(
    "Sample this many more answers per window and keep the one whose letters the word aligner finds likeliest in "
    "the audio (each costs about one more decoding; needs a word aligner)."))]
# The name is given: typer 0.27 derives "--DEVICE" from the metavar when it is not.
DeviceOption = Annotated[str, typer.Option("--device", metavar="DEVICE", help="cpu, cuda, cuda:1, ...")]
ThreadsOption = Annotated[int, typer.Option(min=1, metavar="N", help="CPU threads for torch; more rarely help a graft's "
                                            "small matmuls, and shared cores make them much slower.")]

app = typer.Typer(cls=AudiograftGroup, help="Graft a pretrained audio encoder onto a pretrained LLM.",
                  no_args_is_help=True)
data_app = typer.Typer(help="Build speech datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)


def print_version(requested: bool) -> None:
    if requested:
        typer.echo(f"audiograft {audiograft.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress; show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="Print audiograft's version and exit.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    if not verbose:
        quiet_dependencies()


def quiet_dependencies() -> None:
    """Silences what the libraries underneath print on every normal run and the user can do nothing about.

    Set here, before any command imports them (the environment variables are read at import), so that library
    users keep their own logging configuration."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bar too
    # bitsandbytes, imported by peft, warns that an optional CPU kernel package is not installed.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # peft asks transformers' models for is_gradient_checkpointing, deprecated in transformers 5.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def use_device(device: str, threads: int | None = None) -> None:
    """Refuses a CUDA device where there is none before any model loads, and sets torch's CPU threads."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu, "
                        "or install a CUDA build of torch on a machine with an NVIDIA GPU")
    if threads is not None:
        torch.set_num_threads(threads)


@app.command()
def setup(force: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False) -> None:
    """Convert the built-in small preset's pretrained parts (whisper-base, SmolLM2-135M) into the local cache."""
    from audiograft.presets.pretrained import prepare_small_preset

    preset = prepare_small_preset(force=force)
    console.print(f"encoder: {preset.encoder}\nllm:     {preset.llm}")


@app.command()
def init(
    output: Annotated[Path, typer.Argument(help="Directory to write the new (untrained) graft to.")],
    encoder: Annotated[str | None, typer.Option(help="Whisper or Qwen2-Audio checkpoint: hub id or directory.")] = None,
    llm: Annotated[str | None, typer.Option(help="Causal LM or Qwen2-VL checkpoint: hub id or directory.")] = None,
    preset: Annotated[Preset | None, typer.Option(help="small: whisper-base + SmolLM2-135M-Instruct.")] = None,
    projector: Annotated[Projector, typer.Option()] = Projector(GraftConfig.projector),
    downsample: Annotated[int, typer.Option(min=1, help="Encoder frames per LLM token (pool, stack, qformer).")] = (
        GraftConfig.downsample),
    encoder_context: Annotated[EncoderContextChoice, typer.Option(
        help="trim: the encoder runs on each clip's length; full: on 30 s, as Whisper was trained.")] = (
        EncoderContextChoice(GraftConfig.encoder_context)),
) -> None:
    """Create a graft with a fresh projector on top of two base models."""
    from audiograft.modeling.model import GraftModel

    if preset is not None:
        preset_encoder, preset_llm = PRESET_BASES[preset.value]
        encoder, llm = encoder or preset_encoder, llm or preset_llm
    if encoder is None or llm is None:
        raise typer.BadParameter("name both --encoder and --llm, or --preset small")
    config = GraftConfig(encoder=encoder, llm=llm, projector=projector.value, downsample=downsample,
                         encoder_context=encoder_context.value)
    GraftModel.from_config(config).save_pretrained(output)
    console.print(f"wrote {output}")


@app.command()
def transcribe(
    audio: Annotated[list[Path], typer.Argument(help="Audio files of any length (any format libsndfile reads).")],
    model: ModelOption = "default",
    output_format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat("text"),
    output_dir: Annotated[Path | None, typer.Option(help="Write one file per input here (name + format suffix).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Audio windows decoded together, across files.")] = (
        TranscriptionOptions.batch_size),
    word_timestamps: Annotated[bool, typer.Option(help="Time every word (needs a model with a word aligner).")] = (
        TranscriptionOptions.word_timestamps),
    task: Annotated[str | None, typer.Option(help="Any instruction instead of transcription, e.g. 'Summarise.'")] = (
        TranscriptionOptions.task),
    device: DeviceOption = "cpu",
    threads: ThreadsOption = DEFAULT_CPU_THREADS,
    static_cache: Annotated[bool, typer.Option(
        help="Decode into a static KV cache with the decode step compiled to CUDA graphs (GPU; long jobs).")] = (
        TranscriptionOptions.static_cache),
    ctc_candidates: CtcCandidatesOption = TranscriptionOptions.ctc_candidates,
) -> None:
    """Transcribe audio files, or do --task with them. Without --output-dir the text format prints one line per file
    (its name, a tab, the text) and the others print each file's rendering. A bad file is reported and the rest
    still run; the exit code is then 1."""
    from audiograft.audio.io import AudioError
    from audiograft.inference.transcriber import Transcriber
    from audiograft.inference.transcript import FILE_SUFFIXES, render

    output_format = output_format.value
    stems = [path.stem for path in audio]
    if output_dir is not None and len(set(stems)) < len(stems):
        raise typer.BadParameter("two inputs share a file name; their outputs would overwrite each other",
                                 param_hint="--output-dir")
    use_device(device, threads)
    options = TranscriptionOptions(
        task=task, batch_size=batch_size, word_timestamps=word_timestamps, static_cache=static_cache,
        ctc_candidates=ctc_candidates,
    )
    transcriber = Transcriber(model, device=device, options=options)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path, result in transcriber.transcribe_files(audio):
        if isinstance(result, AudioError):
            failures += 1
            typer.echo(f"error: {result}", err=True)
        elif output_dir is not None:
            (output_dir / f"{path.stem}{FILE_SUFFIXES[output_format]}").write_text(render(result, output_format))
        elif output_format == "text":
            typer.echo(f"{path}\t{result.text}")
        else:
            header = f"==> {path} <==\n" if len(audio) > 1 else ""
            typer.echo(header + render(result, output_format), nl=False)
    if failures:
        raise typer.Exit(code=1)


@app.command()
def merge(
    model: Annotated[Path, typer.Argument(help="A saved graft directory (adapter-only).")],
    output: Annotated[Path, typer.Argument(help="Directory for the standalone merged graft.")],
) -> None:
    """Merge LoRA into the LLM and copy the base weights in: one self-contained directory for deployment."""
    from audiograft.modeling.model import GraftModel

    GraftModel.from_pretrained(model).merge(output)
    console.print(f"wrote {output}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the server beyond this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    model: ModelOption = "default",
    api_key: Annotated[str | None, typer.Option(
        envvar=API_KEY_VARIABLE, metavar="KEY", help="Require 'Authorization: Bearer KEY' on /v1 requests. Prefer the "
        "environment variable: a key on the command line is visible to every user of the machine in `ps`.")] = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = DEFAULT_CPU_THREADS,
    use_prompt: Annotated[bool, typer.Option(help="Add a request's `prompt` to the model's instruction as context "
                                             "(the built-in model reads it out: off by default).")] = (
        ServerSettings.use_prompt),
    max_batch_size: Annotated[int, typer.Option(min=1, help="Requests decoded together in one device batch.")] = (
        ServerSettings.max_batch_size),
    batch_wait_ms: Annotated[float, typer.Option(min=0, help="How long an idle device waits for companions.")] = (
        ServerSettings.batch_wait_seconds * 1000),
    max_queue_depth: Annotated[int, typer.Option(min=1, help="Requests queued or running; past it, 503.")] = (
        ServerSettings.max_queue_depth),
    max_queued_audio_seconds: Annotated[float, typer.Option(min=1, help="Their audio in all; past it, 503.")] = (
        ServerSettings.max_queued_audio_seconds),
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Past it, 413.")] = ServerSettings.max_upload_mb,
    max_audio_seconds: Annotated[float, typer.Option(min=0.1, help="Longer uploads get 413.")] = (
        ServerSettings.max_audio_seconds),
    request_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds from arrival to answer; past it, 504.")] = (
        ServerSettings.request_timeout_seconds),
) -> None:
    """Serve OpenAI's POST /v1/audio/transcriptions (and GET /health), batching concurrent requests on the device."""
    from audiograft.serving.server import serve as run_server

    use_device(device, threads)
    settings = ServerSettings(
        model_name=model, api_key=api_key, use_prompt=use_prompt, max_batch_size=max_batch_size, batch_wait_seconds=batch_wait_ms / 1000,
        max_queue_depth=max_queue_depth, max_queued_audio_seconds=max_queued_audio_seconds, max_upload_mb=max_upload_mb,
        max_audio_seconds=max_audio_seconds, request_timeout_seconds=request_timeout,
    )
    run_server(model, host=host, port=port, device=device, settings=settings)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML); see configs/.")],
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in output_dir.")] = False,
) -> None:
    """Train one stage (projector, or projector + LoRA). Multi-GPU: `accelerate launch -m audiograft train ...`."""
    from accelerate import PartialState

    from audiograft.training.loop import TrainConfig
    from audiograft.training.loop import train as run_training

    final = run_training(TrainConfig.from_yaml(config), resume=resume)
    if PartialState().is_main_process:
        console.print(f"wrote {final}")


@app.command()
def plot(
    run_dir: Annotated[Path, typer.Argument(help="A training output directory (holds log.jsonl).")],
    output: Annotated[Path | None, typer.Option(help="PNG path (default RUN_DIR/curves.png).")] = None,
) -> None:
    """Draw a run's loss, learning rate, gradient norm, throughput and dev WER to PNG."""
    from audiograft.training.loop import plot_run

    console.print(f"wrote {plot_run(run_dir, output)}")


@app.command()
def bench(
    scale: Annotated[str, typer.Option(help="7b (whisper-large-v3-turbo + Qwen2-VL-7B LM), small (the default "
                                             "preset's shapes) or tiny.")] = BenchConfig.scale,
    rows: Annotated[str, typer.Option(help="Comma-separated rows: seed, batched, fast, cached.")] = (
        ",".join(BenchConfig.rows)),
    workloads: Annotated[str, typer.Option(help="W30 (256 x 30 s), Wmix (512 x 2-20 s).")] = (
        ",".join(BenchConfig.workloads)),
    tasks: Annotated[str, typer.Option(help="inference, training.")] = ",".join(BenchConfig.tasks),
    repeats: Annotated[int, typer.Option(min=1, help="Timed passes per row; the median is reported.")] = (
        BenchConfig.repeats),
    seed_clips: Annotated[int, typer.Option(min=1, help="Clips the batch-1 seed row decodes per pass.")] = (
        BenchConfig.seed_clips),
    train_clips: Annotated[int, typer.Option(min=1, help="Clips per timed training pass.")] = BenchConfig.train_clips,
    workload_clips: Annotated[int | None, typer.Option(min=1, help="Only the first N clips of each workload.")] = (
        BenchConfig.workload_clips),
    device: DeviceOption = BenchConfig.device,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")] = Path("bench.json"),
    profile_dir: Annotated[Path | None, typer.Option(help="Write a profiler table per row here.")] = None,
) -> None:
    """Time the seed's recipe against audiograft's fast path on random-weight grafts of full size."""
    from rich.table import Table

    from audiograft.bench.harness import Measurement, run_bench, write_json

    def items(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())

    use_device(device)
    config = BenchConfig(scale=scale, rows=items(rows), workloads=items(workloads), tasks=items(tasks),
                         seed_clips=seed_clips, train_clips=train_clips, workload_clips=workload_clips,
                         repeats=repeats, device=device,
                         profile_dir=str(profile_dir) if profile_dir else None)
    finished: list[dict] = []

    def report(measurement: Measurement) -> None:
        # Each row is written as soon as it is measured: a long run that dies keeps what it measured.
        finished.append(dataclasses.asdict(measurement))
        write_json({"partial": True, "results": finished}, json_path)
        console.print(f"{measurement.workload} {measurement.task} {measurement.row}: "
                      f"{measurement.wall_seconds:.2f} s per pass", highlight=False)

    results = run_bench(config, report)
    write_json(results, json_path)
    table = Table(title=f"{results['architecture']} on {results['device']} "
                        f"(bf16 matmul {results['bf16_matmul_tflops']:.0f} TFLOP/s)")
    for column in ("workload", "task", "row", "clips", "audio s", "wall s", "RTFx", "samples/s", "x seed",
                   "peak GiB", "MFU"):
        table.add_column(column, justify="left" if column in ("workload", "task", "row") else "right")
    for m in results["results"]:
        ratio = results["speedups"].get(f"{m['workload']}/{m['task']}/{m['row']}")
        table.add_row(m["workload"], m["task"], m["row"], str(m["clips"]), f"{m['audio_seconds']:.0f}",
                      f"{m['wall_seconds']:.2f}", f"{m['rtfx']:.1f}", f"{m['samples_per_s']:.2f}",
                      "" if ratio is None else f"{ratio:.1f}", f"{m['peak_memory_gb']:.1f}", f"{m['mfu']:.1%}")
    Console(width=200).print(table)
    console.print(f"wrote {json_path}")


@app.command("eval")
def evaluate(
    manifest: Annotated[Path, typer.Argument(help="JSONL manifest of the utterances to score.")],
    model: ModelOption = "default",
    baseline: Annotated[Baseline | None, typer.Option(help="whisper: the encoder's own Whisper, decoder included.")] = (
        None),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the machine-readable result here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML audit report here.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = TranscriptionOptions.batch_size,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = DEFAULT_CPU_THREADS,
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    ctc_candidates: CtcCandidatesOption = TranscriptionOptions.ctc_candidates,
) -> None:
    """Corpus WER/CER (Whisper-normalised), speed, failure rates; optionally beside plain Whisper, with a report."""
    from audiograft.evaluation.metrics import subsets
    from audiograft.evaluation.report import write_report
    from audiograft.evaluation.runner import WhisperBaseline, evaluate_model
    from audiograft.manifest import read_manifest
    from audiograft.modeling.model import GraftModel
    from audiograft.presets.pretrained import resolve_base

    use_device(device, threads)
    utterances = read_manifest(manifest)[:limit]
    graft = GraftModel.from_pretrained(model, device=device, merge_lora=True)
    result = evaluate_model(graft, utterances, batch_size, name=model, ctc_candidates=ctc_candidates)
    if baseline is not None:
        whisper = WhisperBaseline(resolve_base(graft.config.encoder), device=device)
        result.baseline = whisper.evaluate(utterances, batch_size, max_seconds=graft.encoder.max_seconds)
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
            + (f"  timestamp MAE {system.timestamps.mae_ms:.1f} ms" if system.timestamps and system.timestamps.mae_ms else "")
            + (f"  confidence ECE {system.confidence_ece:.3f}" if system.confidence_ece is not None else "")
        )
        for subset in subsets(system.utterances):
            if subset.n_utterances:
                typer.echo(f"  {subset.label}: WER {100 * subset.wer:.2f}%  CER {100 * subset.cer:.2f}%  "
                           f"n={subset.n_utterances}")


@app.command("align-train")
def align_train(
    model: Annotated[str, typer.Argument(help="The graft directory to add the word aligner to, or 'default'.")],
    train_manifest: Annotated[Path, typer.Argument(help="JSONL manifest; utterances with word timings also teach word edges.")],
    dev: Annotated[Path | None, typer.Option(help="Manifest with word timings to report boundary errors on.")] = None,
    cache: Annotated[Path | None, typer.Option(help="Keep the encoder frames here for later runs (default: a temporary directory).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    edge_weight: Annotated[float, typer.Option(help="Weight of the word-edge loss; 0 trains letters (CTC) only.")] = 1.0,
    limit: Annotated[int | None, typer.Option(help="Train on the first N utterances only.")] = None,
) -> None:
    """Train the word-timestamp head on the graft's frozen encoder frames and save it into the graft directory."""
    import tempfile

    from audiograft.manifest import read_manifest, read_training_manifest
    from audiograft.modeling.model import GraftModel
    from audiograft.training.aligner import (
        encoder_frames,
        make_example,
        timing_errors,
        train_aligner,
    )
    from audiograft.training.encoder_cache import EncoderCache

    graft = GraftModel.from_pretrained(model)
    with tempfile.TemporaryDirectory() as temporary:
        frames = EncoderCache(cache or temporary, graft.encoder, graft.processor, graft.config.encoder)
        train = encoder_frames(frames, read_training_manifest(train_manifest)[:limit])
        frame_seconds = graft.encoder.frame_seconds
        aligner = train_aligner([make_example(f, u.text, u.words, frame_seconds) for u, f in train],
                                frame_seconds=frame_seconds, epochs=epochs, edge_weight=edge_weight)
        if dev is not None:
            errors = timing_errors(aligner, encoder_frames(frames, [u for u in read_manifest(dev) if u.words]))
            console.print(f"dev: {errors.n_words} words, boundary MAE {errors.mae_ms:.1f} ms, "
                          f"within 50 ms {errors.share_within(50):.1%}, within 100 ms {errors.share_within(100):.1%}")
    console.print(f"wrote the word aligner to {aligner.save_pretrained(graft.directory)}")


@app.command()
def calibrate(
    model: Annotated[str, typer.Argument(help="The graft directory to fit the confidence calibrator of.")],
    manifests: Annotated[list[Path], typer.Argument(
        help="JSONL manifests of speakers the model did not train on, joined (e.g. predictable sentences and "
             "scrambled words, so that the confidences hold where the model cannot guess the words).")],
    batch_size: Annotated[int, typer.Option(min=1)] = TranscriptionOptions.batch_size,
    threads: ThreadsOption = DEFAULT_CPU_THREADS,
    limit: Annotated[int | None, typer.Option(help="Use the first N utterances only.")] = None,
) -> None:
    """Fit the word-confidence calibrator (Platt scaling) on the model's transcripts of held-out speech and save it
    into the graft directory."""
    from audiograft.evaluation.runner import fit_calibrator
    from audiograft.manifest import read_manifest
    from audiograft.modeling.model import GraftModel

    use_device("cpu", threads)
    graft = GraftModel.from_pretrained(model, merge_lora=True)
    utterances = [utterance for manifest in manifests for utterance in read_manifest(manifest)][:limit]
    calibrator, raw_ece, calibrated_ece = fit_calibrator(graft, utterances, batch_size)
    console.print(f"confidence ECE on {len(utterances)} utterances of {', '.join(map(str, manifests))}: "
                  f"raw {raw_ece:.3f}, calibrated {calibrated_ece:.3f} "
                  f"(slope {calibrator.slope:.3f}, intercept {calibrator.intercept:.3f})")
    console.print(f"wrote the calibrator to {calibrator.save(graft.directory)}")


@data_app.command("synth")
def synth(
    output: Annotated[Path, typer.Argument(help="Corpus directory (audio/, train.jsonl, test.jsonl).")],
    utterances: Annotated[int, typer.Option(min=1, help="How many utterances in all (every part's together).")],
    seed: Annotated[int, typer.Option(help="Same seed, same corpus.")] = 0,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel synthesis processes (default: all cores).")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of voices and sentences held out for test.")] = 0.1,
    engines: Annotated[str | None, typer.Option(
        metavar="NAMES", help="Only these TTS engines, comma-separated (e.g. kokoro,espeak; default: every "
                              "installed one).")] = None,
    texts: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Plan from the text pools `audiograft data texts` wrote (default: load the text "
                             "sources installed here).")] = None,
    start: Annotated[int, typer.Option(
        min=0, help="Make only the plan's utterances from this one on: parts built on several machines take "
                    "disjoint ranges of one plan (same seed and --texts), then `audiograft data merge` joins them.")] = 0,
    audio_format: Annotated[ClipFormat, typer.Option(
        help="flac (lossless), or opus: wideband Ogg/Opus at 12 kbit/s, a fifth of the size, for a corpus that "
             "must travel.")] = ClipFormat("flac"),
    only_split: Annotated[str | None, typer.Option(
        "--split", help="Make only this split's utterances (train or test): --split test is a held-out set alone.")] = None,
) -> None:
    """Synthesise a multi-voice English corpus, test voices and sentences held out; rerun to resume."""
    import os

    from audiograft.corpora.synthesis import build_corpus
    from audiograft.corpora.texts import read_text_pools

    pools = read_text_pools(texts) if texts is not None else None
    summary = build_corpus(output, utterances, seed=seed, workers=workers or os.cpu_count() or 1,
                           test_fraction=test_fraction, engines=engines.split(",") if engines else None,
                           texts=pools, start=start, audio_format=audio_format.value, split=only_split)
    for split in sorted(summary.utterances):
        console.print(f"{split}: {summary.utterances[split]} utterances, {summary.hours[split]:.2f} h, "
                      f"{len(summary.voices[split])} voices")
    console.print(f"{summary.wall_seconds:.0f} s; failed: {summary.failed}")


@data_app.command("texts")
def text_pools(
    output: Annotated[Path, typer.Argument(help="File to write (gzipped JSON, e.g. texts.json.gz).")],
    sources: Annotated[str | None, typer.Option(
        metavar="NAMES", help="Only these text sources, comma-separated (default: the shipped model's, every one "
                              "but scrambled and fortunes).")] = None,
    held_out: Annotated[list[Path] | None, typer.Option(
        help="An evaluation manifest (repeatable): drop every text sharing a run of words (as many as "
             "audiograft.corpora.texts.OVERLAP_WORDS says) with its transcripts.")] = None,
) -> None:
    """Write the corpus's text pools as the text sources installed here give them, with their licences, for
    `audiograft data synth --texts` on a machine without those sources."""
    from audiograft.corpora.texts import (
        DEFAULT_SOURCES,
        drop_overlapping,
        load_texts,
        named_sources,
        write_text_pools,
    )
    from audiograft.manifest import read_manifest

    try:
        chosen = DEFAULT_SOURCES if sources is None else named_sources(sources.split(","))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--sources") from None
    pools = load_texts(chosen)
    if held_out:
        pools = drop_overlapping(pools, [utterance.text for path in held_out for utterance in read_manifest(path)])
    write_text_pools(output, pools)
    console.print(f"wrote {output}: " + ", ".join(f"{name} {len(pool)}" for name, pool in pools.items()))


@data_app.command("merge")
def merge_parts(
    output: Annotated[Path, typer.Argument(help="Directory for the merged manifests (train.jsonl, test.jsonl).")],
    parts: Annotated[list[Path], typer.Argument(help="Corpus directories `audiograft data synth` built.")],
) -> None:
    """Join corpus parts built on several machines into one corpus: manifests that point into the parts' audio
    (relative paths: keep the parts and OUTPUT together)."""
    from audiograft.corpora.synthesis import merge_corpora

    counts = merge_corpora(output, parts)
    console.print(f"wrote {output}: " + ", ".join(f"{split} {count} utterances" for split, count in counts.items()))


@data_app.command("stats")
def corpus_stats(
    corpus: Annotated[Path, typer.Argument(help="A corpus directory (`audiograft data synth` or `data merge`).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the table as JSON here.")] = None,
) -> None:
    """Voices, utterances and hours of a synthetic corpus, per TTS engine and split."""
    import json

    from rich.table import Table

    from audiograft.corpora.synthesis import corpus_statistics
    from audiograft.files import write_text_atomically

    statistics = corpus_statistics(corpus)
    table = Table("engine", "split", "voices", "utterances", "hours")
    for engine, splits in statistics.items():
        for split, row in splits.items():
            table.add_row(engine, split, str(row["voices"]), str(row["utterances"]), f"{row['hours']:.2f}")
    console.print(table)
    if json_out is not None:
        write_text_atomically(json_out, json.dumps(statistics, indent=1))


@data_app.command("dev")
def dev(
    output: Annotated[Path, typer.Argument(help="Directory for dev.jsonl and its audio.")],
    examples: Annotated[Path, typer.Option(help="Directory holding jfk.flac.")] = Path("examples"),
    cache: Annotated[Path | None, typer.Option(help="Directory to download packages into and reuse them from "
                                                    "(default: a temporary one).")] = None,
) -> None:
    """Real human English speech for evaluation only, from packages that ship it with transcripts (LibriVox
    readings, test clips of speech tools, the JFK sample); OUT/LICENCES names each source and its licence."""
    from collections import defaultdict

    from audiograft.corpora.devset import build_dev_manifest
    from audiograft.manifest import read_manifest

    manifest = build_dev_manifest(output, examples, cache_dir=cache)
    utterances = read_manifest(manifest)
    by_corpus = defaultdict(list)
    for utterance in utterances:
        by_corpus[utterance.metadata.get("corpus")].append(utterance)
    for corpus, clips in by_corpus.items():
        console.print(f"  {corpus}: {len(clips)} clips, {sum(u.duration for u in clips):.1f} s, "
                      f"{sum(len(u.text.split()) for u in clips)} words")
    console.print(f"wrote {manifest}: {len(utterances)} utterances, {sum(u.duration for u in utterances):.1f} s")


@data_app.command("nonspeech")
def nonspeech(
    output: Annotated[Path, typer.Argument(help="Directory for nonspeech.jsonl and its audio.")],
    seed: Annotated[int, typer.Option(help="Same seed, same clips.")] = 0,
) -> None:
    """Silence, coloured noise and synthetic music with empty references: any output on them is a hallucination."""
    from audiograft.corpora.devset import build_nonspeech_manifest
    from audiograft.manifest import read_manifest

    manifest = build_nonspeech_manifest(output, seed=seed)
    utterances = read_manifest(manifest)
    console.print(f"wrote {manifest}: {len(utterances)} clips, {sum(u.duration for u in utterances):.1f} s")


@data_app.command("real")
def real(
    output: Annotated[Path, typer.Argument(
        help="Directory for audio/, train.jsonl, dev.jsonl, manifest.jsonl and LICENCES/.")],
    debs: Annotated[Path | None, typer.Option(
        help="Directory of the .deb files: those already there are used, the others fetched with apt-get download "
             "(default: OUTPUT/debs).")] = None,
    language: Annotated[list[str] | None, typer.Option(
        help="A language to build (es, fr, it, ru; repeat it; default: all). English is never read.")] = None,
) -> None:
    """Real human speech in es/fr/it/ru from Debian's Asterisk prompt packages, one speaker per package, each
    language's dev split another speaker than its train split."""
    import tempfile

    from audiograft.corpora.realspeech import (
        LANGUAGES,
        build_real_speech,
        fetch_packages,
        summary_table,
        unpack_packages,
    )

    languages = language or list(LANGUAGES)
    packages = fetch_packages(debs or output / "debs", languages)
    with tempfile.TemporaryDirectory() as unpacked:
        summary = build_real_speech(output, unpack_packages(packages, unpacked), languages)
    for line in summary_table(summary):
        console.print(line)
    for speaker, source in sorted(summary.sources.items()):
        console.print(f"{speaker}: {source}")
    for (speaker, reason), count in sorted(summary.skipped.items()):
        if count:
            console.print(f"skipped {speaker}: {count} {reason}")
    console.print(f"wrote {output / 'train.jsonl'}, {output / 'dev.jsonl'}; licences in {output / 'LICENCES'}")
