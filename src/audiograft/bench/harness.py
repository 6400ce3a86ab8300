"""`audiograft bench`: the speed of a graft at full scale, the seed's recipe against audiograft's fast path.

Speed does not depend on weight values, so the architectures are built from their published hyperparameters with
random bf16 weights (`audiograft.bench.architectures`). Every row runs in one process on one device and does the same
work: the workload's clips, a ~24-token prompt, and answers forced to 3 tokens per audio second (at least 8).

Rows (`ROWS`): `seed` is the seed graft's recipe (one clip per `generate`, 1,500 audio tokens per clip whatever
its length; training batches of 4 padded to 30 s, gradient checkpointing, logits over the whole sequence);
`batched` is batching with 4x downsampling and the encoder on trimmed context, which `Transcriber` and
`audiograft train` always do; `fast` adds what is switched on by options (the static KV cache with compiled
decoding; training without gradient checkpointing, with length-bucketed batches); `cached` trains `fast`'s way
from the frozen encoder's frames (the encoder cache, as every epoch after the first). Inference times
`GraftModel.transcribe`, the batch step `Transcriber` runs; training times the step of `audiograft train`
(forward with answer-only logits, backward, clipping, fused AdamW) on batches collated beforehand, as the
loader's workers would have them ready.

Figures: inference RTFx (audio seconds per wall second); training samples/s and audio seconds/s; peak device
memory; model FLOP utilisation against the bf16 matmul rate measured in the same run. Each figure is the median
of repeated timed passes after a warm-up (a whole pass for compiled rows), the device synchronised around each.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiograft.audio.io import SAMPLE_RATE
from audiograft.bench.architectures import ARCHITECTURES, Architecture, random_graft
from audiograft.bench.config import WORKLOADS, BenchConfig
from audiograft.files import write_text_atomically
from audiograft.modeling.config import GraftConfig, LoraSettings
from audiograft.modeling.encoders import AudioEncoder
from audiograft.modeling.llms import LanguageModel
from audiograft.modeling.model import GraftModel
from audiograft.modeling.processor import IGNORE_INDEX
from audiograft.training.data import Example, LengthBucketSampler, SpeechCollator
from audiograft.training.loop import make_trainable, set_gradient_checkpointing

logger = logging.getLogger(__name__)

TOKENS_PER_SECOND = 3.0
MIN_ANSWER_TOKENS = 8
ALL_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def workload_durations(name: str, seed: int = 0) -> list[float]:
    """W30: 256 clips of 30 s. Wmix: 512 clips of 2-20 s, uniformly distributed."""
    if name == "W30":
        return [30.0] * 256
    if name == "Wmix":
        return np.random.default_rng(seed).uniform(2.0, 20.0, 512).round(2).tolist()
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


def answer_tokens(seconds: float) -> int:
    return max(MIN_ANSWER_TOKENS, round(TOKENS_PER_SECOND * seconds))


@dataclass(frozen=True)
class Recipe:
    """How one row runs: the graft's shape and the switches of the inference and training paths."""

    name: str
    projector: str = "stack"
    downsample: int = 4
    encoder_context: str = "trim"
    inference_batch: int = 256
    static_cache: bool = False
    train_batch: int = 4
    max_batch_seconds: float | None = None
    gradient_checkpointing: bool = False
    full_logits: bool = False  # the loss from logits at every position (the stock `labels=` path)
    pad_to_30s: bool = False  # every clip padded with silence to 30 s: 1,500 audio tokens whatever its length
    encoder_cache: bool = False  # train from the frozen encoder's frames computed beforehand (`encoder_cache:`)

    def graft_config(self) -> GraftConfig:
        return GraftConfig(encoder="random", llm="random", projector=self.projector, downsample=self.downsample,
                           encoder_context=self.encoder_context)


ROWS = {
    "seed": Recipe("seed", projector="linear", downsample=1, encoder_context="full", inference_batch=1,
                   train_batch=4, max_batch_seconds=None, gradient_checkpointing=True, full_logits=True,
                   pad_to_30s=True),
    # The obvious first steps: batches, 4x downsampling, the encoder on each clip's own length, answer-only logits.
    "batched": Recipe("batched", train_batch=4, max_batch_seconds=None, gradient_checkpointing=True),
    # Then: decoding compiled against a static KV cache; training batches of up to 480 s of audio, bucketed by
    # length, with every activation kept (no gradient checkpointing).
    "fast": Recipe("fast", static_cache=True, train_batch=64, max_batch_seconds=480.0),
    # Training only: the frozen encoder's frames read from the encoder cache, as every epoch after the first does.
    "cached": Recipe("cached", train_batch=64, max_batch_seconds=480.0, encoder_cache=True),
}


@dataclass
class Measurement:
    workload: str
    task: str  # "inference" or "training"
    row: str
    clips: int
    audio_seconds: float
    wall_seconds: float  # median of the timed passes
    passes: list[float]
    warmup_seconds: float
    peak_memory_gb: float
    model_tflop: float  # model FLOPs of one pass
    mfu: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds

    @property
    def samples_per_second(self) -> float:
        return self.clips / self.wall_seconds


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """The bf16 matmul rate this device reaches, the ceiling model FLOP utilisation is measured against."""
    if device.type != "cuda":
        size, repeats = 1024, 3
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    seconds = _timed(lambda: [a @ b for _ in range(repeats)], device)
    return 2 * size**3 * repeats / seconds / 1e12


class FlopCounter:
    """Model FLOPs of a graft's forward (and training backward), counted from its shapes.

    Matmuls only (2 FLOPs per multiply-add): convolutions, projections, attention scores and values, logits.
    Recomputation under gradient checkpointing is not model work and is not counted.
    """

    def __init__(self, architecture: Architecture, recipe: Recipe, lora_rank: int):
        self.enc, self.llm, self.recipe, self.rank = architecture.encoder, architecture.llm, recipe, lora_rank

    def encoder_positions(self, seconds: float) -> int:
        """Positions the encoder runs on: the clip's own (50 per second), or 30 s of them."""
        full = self.recipe.encoder_context == "full" or self.recipe.pad_to_30s
        return self.enc.positions if full else self._positions(seconds)

    def audio_tokens(self, seconds: float) -> int:
        """Tokens the LLM gets: a clip's own frames only (padding is dropped), unless it was padded as audio."""
        frames = self.enc.positions if self.recipe.pad_to_30s else self._positions(seconds)
        return math.ceil(frames / self.recipe.downsample)

    def _positions(self, seconds: float) -> int:
        # Whisper's log-mel frames (100 a second, the clip's own) halved by the stride-2 convolution.
        return math.ceil(round(seconds * 100) / 2)

    def encoder(self, seconds: float) -> float:
        e, positions = self.enc, self.encoder_positions(seconds)
        convs = 2 * 3 * e.mel_bins * e.d_model * 2 * positions + 2 * 3 * e.d_model**2 * positions
        per_layer = positions * (8 * e.d_model**2 + 4 * e.d_model * e.ffn) + 4 * positions**2 * e.d_model
        return convs + e.layers * per_layer

    def projector(self, seconds: float) -> float:
        d_in, d_llm, k = self.enc.d_model, self.llm.hidden, self.recipe.downsample
        if self.recipe.projector == "stack":
            return 2 * self.audio_tokens(seconds) * (k * d_in * 2 * d_llm + d_llm * d_llm)
        return 2 * self.audio_tokens(seconds) * d_in * d_llm

    def _layer_weights(self) -> int:
        m = self.llm
        kv = m.hidden // m.heads * m.kv_heads
        return 2 * m.hidden * m.hidden + 2 * m.hidden * kv + 3 * m.hidden * m.intermediate

    def _lora_weights(self) -> int:
        m = self.llm
        kv = m.hidden // m.heads * m.kv_heads
        ins_outs = 2 * (2 * m.hidden) + 2 * (m.hidden + kv) + 3 * (m.hidden + m.intermediate)
        return self.rank * ins_outs

    def llm_tokens(self, tokens: int, context_sum: float, logits: int, lora: bool) -> float:
        """Forward over `tokens` new tokens attending to `context_sum` positions in total."""
        weights = self._layer_weights() + (self._lora_weights() if lora else 0)
        return self.llm.layers * (2 * weights * tokens + 4 * context_sum * self.llm.hidden) + 2 * logits * (
            self.llm.hidden * self.llm.vocab
        )

    def inference(self, seconds: float, prompt_tokens: int) -> float:
        answer = answer_tokens(seconds)
        prompt = prompt_tokens + self.audio_tokens(seconds)
        prefill = self.llm_tokens(prompt, prompt * (prompt + 1) / 2, 1, lora=False)
        decode = self.llm_tokens(answer - 1, sum(prompt + i for i in range(1, answer)), answer - 1, lora=False)
        return self.encoder(seconds) + self.projector(seconds) + prefill + decode

    def training(self, seconds: float, prompt_tokens: int) -> float:
        answer = answer_tokens(seconds) + 1  # and the end-of-turn token
        length = prompt_tokens + self.audio_tokens(seconds) + answer
        logits = length if self.recipe.full_logits else answer
        forward = self.llm_tokens(length, length * (length + 1) / 2, logits, lora=False)
        lora = 2 * self._lora_weights() * length * self.llm.layers
        # Frozen weights need only input gradients (one forward's worth); LoRA weights both (two); attention two.
        attention = 4 * length * (length + 1) / 2 * self.llm.hidden * self.llm.layers
        backward = forward + attention + 2 * lora
        return self.encoder(seconds) + 3 * self.projector(seconds) + forward + lora + backward


def run_bench(config: BenchConfig, report: Callable[[Measurement], None] | None = None) -> dict[str, Any]:
    """Every (workload, task, row) of `config`; returns the JSON-ready results."""
    device = torch.device(config.device)
    architecture = ARCHITECTURES[config.scale]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = matmul_tflops(device)
    logger.info("bf16 matmul rate: %.0f TFLOP/s", peak)
    recipes = [ROWS[name] for name in config.rows]
    first = recipes[0]
    base = random_graft(architecture, first.graft_config(), device=device, dtype=dtype)
    grafts = {first.name: base}
    for recipe in recipes[1:]:
        # Rows share the encoder and the LLM; each has its own projector.
        torch.manual_seed(0)
        encoder = AudioEncoder(base.encoder.model, recipe.encoder_context)
        language_model = LanguageModel(base.llm, base.processor.tokenizer, base.processor.llm_processor)
        grafts[recipe.name] = GraftModel(recipe.graft_config(), encoder, language_model).to(device)
    prompt_tokens = len(base.processor.encode([0]).input_ids)
    results: list[Measurement] = []
    for task in config.tasks:
        if task == "training":
            _release_compiled(device)
            _add_lora(grafts, config.lora_rank)
        for workload in config.workloads:
            durations = workload_durations(workload)[: config.workload_clips]
            waveforms = _noise(durations)
            for recipe in recipes:
                if task == "inference" and recipe.encoder_cache:
                    continue
                graft = grafts[recipe.name]
                counter = FlopCounter(architecture, recipe, config.lora_rank)
                if task == "inference":
                    measurement = _bench_inference(graft, recipe, workload, waveforms, durations, config, counter,
                                                   prompt_tokens, peak)
                else:
                    measurement = _bench_training(graft, recipe, workload, waveforms, durations, config, counter,
                                                  prompt_tokens, peak)
                results.append(measurement)
                if report is not None:
                    report(measurement)
    return {
        "architecture": architecture.name,
        "scale": config.scale,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "bf16_matmul_tflops": peak,
        "prompt_tokens": prompt_tokens,
        "config": dataclasses.asdict(config),
        "recipes": {r.name: dataclasses.asdict(r) for r in recipes},
        "results": [_as_json(m) for m in results],
        "speedups": speedups(results),
    }


def speedups(results: list[Measurement]) -> dict[str, float]:
    """Each row's throughput over the seed row's, per workload and task."""
    seed = {(m.workload, m.task): m for m in results if m.row == "seed"}
    ratios = {}
    for m in results:
        reference = seed.get((m.workload, m.task))
        if reference is not None and m.row != "seed":
            ratios[f"{m.workload}/{m.task}/{m.row}"] = m.samples_per_second / reference.samples_per_second
    return ratios


def _bench_inference(graft, recipe, workload, waveforms, durations, config, counter, prompt_tokens, peak):
    indices = sorted(range(len(durations)), key=lambda i: durations[i])
    if recipe.inference_batch == 1:
        step = max(1, len(indices) // config.seed_clips)
        indices = indices[step // 2 :: step][: config.seed_clips]
    clips = {i: _padded(waveforms[i]) if recipe.pad_to_30s else waveforms[i] for i in indices}
    batches = [indices[i : i + recipe.inference_batch] for i in range(0, len(indices), recipe.inference_batch)]

    def run(selected: list[list[int]]) -> None:
        for batch in selected:
            tokens = max(answer_tokens(durations[i]) for i in batch)
            graft.transcribe([clips[i] for i in batch], max_new_tokens=tokens, min_new_tokens=tokens,
                             static_cache=recipe.static_cache)

    graft.eval()
    # A compiled decoder compiles once per batch shape: its warm-up is a whole pass. Eager rows warm up on a batch.
    warmup = batches if recipe.static_cache else batches[:1]
    with torch.no_grad():
        passes, warmup_seconds, peak_memory = _timed_passes(
            lambda: run(batches), lambda: run(warmup), config, graft.device,
            # The profiler stalls on CUDA graph replays: compiled rows are not profiled.
            None if recipe.static_cache else f"{workload}-inference-{recipe.name}",
        )
        largest = batches[-1]
        phases = _phases(graft, [clips[i] for i in largest], max(answer_tokens(durations[i]) for i in largest),
                         recipe.static_cache)
    seconds = [durations[i] for i in indices]
    flops = sum(counter.inference(s, prompt_tokens) for s in seconds)
    return _measurement(workload, "inference", recipe.name, seconds, passes, warmup_seconds, peak_memory, flops,
                        peak, {"batches": len(batches), "audio_tokens_30s": counter.audio_tokens(30.0),
                               "last_batch_phases": phases})


def _phases(graft: GraftModel, clips: list[np.ndarray], tokens: int, static_cache: bool) -> dict[str, float]:
    """Seconds one batch spends on log-mel features, the encoder, the prompt (prefill) and the decode steps."""
    device = graft.device
    marks = [time.perf_counter()]

    def mark() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks.append(time.perf_counter())

    inputs = graft.processor(clips, feature_device=device)
    mark()
    encoded = graft.encode_audio(inputs.pop("input_features"), inputs.pop("feature_lengths"))
    mark()
    for new_tokens in (1, tokens):
        graft.generate(**inputs, encoded_audio=encoded, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       static_cache=static_cache)
        mark()
    features, encoder, prefill, whole = (b - a for a, b in pairwise(marks))
    return {"clips": len(clips), "features": features, "encoder": encoder, "prefill": prefill,
            "decode": whole - prefill, "decode_steps": tokens - 1}


def _bench_training(graft, recipe, workload, waveforms, durations, config, counter, prompt_tokens, peak):
    device = graft.device
    rng = np.random.default_rng(1)
    indices = sorted(rng.choice(len(durations), size=min(config.train_clips, len(durations)), replace=False).tolist())
    examples = [
        Example(j, _answer_text(graft, answer_tokens(durations[i])),
                _padded(waveforms[i]) if recipe.pad_to_30s else waveforms[i])
        for j, i in enumerate(indices)
    ]
    encoding_seconds = _timed(lambda: _encode_examples(graft, examples), device) if recipe.encoder_cache else 0.0
    sampler = LengthBucketSampler([durations[i] for i in indices], recipe.train_batch, recipe.max_batch_seconds)
    collator = SpeechCollator(graft.processor)
    batches = [collator([examples[j] for j in batch]) for batch in sampler.batches()]
    parameters = [p for p in graft.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5, fused=device.type == "cuda")
    set_gradient_checkpointing(graft, recipe.gradient_checkpointing)
    graft.train()
    graft.encoder.eval()

    def run(selected: list[dict[str, torch.Tensor]]) -> None:
        for batch in selected:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = _full_logits_loss(graft, batch) if recipe.full_logits else graft(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    largest_first = sorted(batches, key=lambda b: -b["attention_mask"].numel())
    try:
        passes, warmup_seconds, peak_memory = _timed_passes(
            lambda: run(batches), lambda: run(largest_first[:2]), config, device, f"{workload}-training-{recipe.name}"
        )
    finally:
        set_gradient_checkpointing(graft, False)
        graft.eval()
    seconds = [durations[i] for i in indices]
    flops = sum(counter.training(s, prompt_tokens) for s in seconds)
    sizes = [int(b["attention_mask"].shape[0]) for b in batches]
    if recipe.encoder_cache:
        flops -= sum(counter.encoder(s) for s in seconds)
    return _measurement(workload, "training", recipe.name, seconds, passes, warmup_seconds, peak_memory, flops, peak,
                        {"steps": len(batches), "largest_batch": max(sizes), "encoding_seconds": encoding_seconds})


def _encode_examples(graft: GraftModel, examples: list[Example], batch_size: int = 32) -> None:
    """Give each example its encoder frames and log-mel length, as `EncoderCache` stores them (kept in memory)."""
    with torch.no_grad():
        for first in range(0, len(examples), batch_size):
            group = examples[first : first + batch_size]
            features = graft.processor.featurize([e.waveform for e in group], graft.device)
            for example, (frames, length) in zip(group, graft.encoder.encode_clips(*features)):
                example.encoded = (frames.clone(), length)  # not a view that keeps the whole batch alive


def _full_logits_loss(graft: GraftModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The stock causal-LM loss: logits at every position, then the shifted cross-entropy (the seed's path)."""
    logits = graft(**{k: v for k, v in batch.items() if k != "labels"}).logits
    targets = batch["labels"][:, 1:].to(logits.device)
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                                             ignore_index=IGNORE_INDEX)


def _padded(waveform: np.ndarray) -> np.ndarray:
    return np.pad(waveform, (0, max(0, 30 * SAMPLE_RATE - waveform.size)))


def _timed_passes(
    one_pass: Callable[[], None], warm_up: Callable[[], None], config: BenchConfig, device: torch.device,
    profile_name: str | None,
) -> tuple[list[float], float, float]:
    """Warm up, then time `config.repeats` passes; the peak memory of those; a profile of one more if asked."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    warmup_seconds = _timed(warm_up, device)
    passes = [_timed(one_pass, device) for _ in range(config.repeats)]
    peak_memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    if config.profile_dir and profile_name:
        _profile(one_pass, Path(config.profile_dir) / profile_name, device)
    return passes, warmup_seconds, peak_memory


def _timed(work: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _profile(work: Callable[[], None], path: Path, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        work()
    path.parent.mkdir(parents=True, exist_ok=True)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    path.with_suffix(".txt").write_text(profiler.key_averages().table(sort_by=sort_by, row_limit=40))


def _measurement(workload, task, row, seconds, passes, warmup, peak_memory, flops, peak, extra) -> Measurement:
    wall = statistics.median(passes)
    return Measurement(workload, task, row, len(seconds), float(sum(seconds)), wall, passes, warmup, peak_memory,
                       flops / 1e12, flops / wall / (peak * 1e12), extra)


def _add_lora(grafts: dict[str, GraftModel], rank: int) -> None:
    """One LoRA (rank `rank`, every linear layer of the LLM) shared by every row, and each row's projector."""
    settings = LoraSettings(r=rank, alpha=2 * rank, dropout=0.0, target_modules=ALL_LINEARS)
    first, *others = grafts.values()
    make_trainable(first, stage=2, lora=settings)
    for graft in others:
        graft.llm = first.llm
        graft.config.lora = settings
        make_trainable(graft, stage=2, lora=settings)




def _release_compiled(device: torch.device) -> None:
    """Drop compiled decoders and their CUDA graph pools, so that training's peak memory is its own."""
    import gc

    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _noise(durations: list[float]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32) for s in durations]


def _answer_text(graft: GraftModel, tokens: int) -> str:
    """A text of about `tokens` tokens (random weights learn nothing; only the length matters)."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "hello", "world"]
    tokenizer = graft.processor.tokenizer
    ids = tokenizer(" ".join(words * (tokens // 4 + 2)), add_special_tokens=False)["input_ids"][:tokens]
    return tokenizer.decode(ids).strip()


def _versions() -> dict[str, str]:
    import accelerate
    import peft
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "accelerate": accelerate.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        versions["cuda"] = torch.version.cuda or ""
    return versions


def _as_json(m: Measurement) -> dict[str, Any]:
    values = dataclasses.asdict(m)
    values.update(rtfx=m.rtfx, samples_per_s=m.samples_per_second, audio_s_per_s=m.rtfx)
    return values


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    return write_text_atomically(path, json.dumps(results, indent=2) + "\n")

