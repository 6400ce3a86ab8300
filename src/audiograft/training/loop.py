"""Two-stage training: stage 1 trains the projector, stage 2 adds LoRA on the LLM (and on the encoder's top layers
where the graft's config asks for encoder_lora).

One loop, read top to bottom in `train`. accelerate carries it to one GPU or many (DDP), bf16 on GPU
and fp32 on CPU. Checkpoints hold only what trains (projector, LoRA), the optimizer and scheduler,
and the RNG state, in safetensors and JSON, written atomically; `resume` continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator, DistributedType
from peft import PeftModel, prepare_model_for_kbit_training
from safetensors.torch import load_file, save_file
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup

from audiograft.audio.augment import Augmentation
from audiograft.evaluation.runner import evaluate_model
from audiograft.files import atomic_path
from audiograft.manifest import Utterance, read_manifest, read_training_manifest
from audiograft.modeling.config import GraftConfig, LoraSettings
from audiograft.modeling.model import GraftModel
from audiograft.training.data import (
    LengthBucketSampler,
    SpecAugment,
    SpeechCollator,
    SpeechDataset,
    with_existing_audio,
)
from audiograft.training.encoder_cache import EncoderCache

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
LOG_NAME = "log.jsonl"


@dataclass
class TrainConfig:
    """Everything a run needs; `audiograft train CONFIG.yaml` reads these keys."""

    output_dir: str
    train_manifest: str
    dev_manifest: str | None = None
    model: dict[str, Any] | None = None  # GraftConfig fields for a new graft ...
    init_from: str | None = None  # ... or a saved graft to continue from (stage 2 starts from stage 1)
    stage: int = 1
    lora: LoraSettings = field(default_factory=LoraSettings)
    qlora: bool = False  # stage 2 on a 4-bit NF4 LLM (bitsandbytes), as the QLoRA recipe trains
    instruction: str | None = None
    batch_size: int = 16
    max_batch_seconds: float | None = None
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 1000
    grad_clip: float = 1.0
    # Weight of the auxiliary CTC loss on the projected audio tokens (GraftModel.ctc_loss); 0 trains on the answers'
    # next-token loss alone.
    ctc_weight: float = 0.0
    # Waveform augmentation: true for audio.augment.Augmentation's defaults (speed change alone), or a mapping of its
    # fields to set their strengths (e.g. {noise_probability: 0.8, snr_range_db: [0, 20]}).
    augment: bool | dict[str, Any] = False
    spec_augment: bool = False
    # Directory for the frozen encoder's output (either stage, no augmentation, no encoder_lora).
    encoder_cache: str | None = None
    # Recompute the LLM's activations in the backward pass: about a third more compute for much less memory, for
    # batches that would not fit otherwise (QLoRA on a large LLM). Off by default: speed first where memory allows.
    gradient_checkpointing: bool = False
    num_workers: int = 0
    log_every: int = 10
    eval_every: int = 0
    eval_utterances: int = 200
    save_every: int = 200
    keep_last: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        augmentation(self.augment, None)  # a bad mapping fails here, before any model is loaded
        if self.encoder_cache and (self.augment is not False or self.spec_augment):
            raise ValueError("encoder_cache needs training without augment and spec_augment: the frames must not change")
        # Checked here for a new graft, before any model loads; EncoderCache refuses a saved graft's encoder LoRA.
        if self.encoder_cache and (self.model or {}).get("encoder_lora") is not None:
            raise ValueError("encoder_cache needs a frozen encoder: with encoder_lora its frames change as it trains")
        if self.ctc_weight < 0:
            raise ValueError(f"ctc_weight must be >= 0, got {self.ctc_weight}")
        if self.qlora and self.stage != 2:
            raise ValueError("qlora applies to stage 2 (LoRA); stage 1 trains only the projector")
        if (self.model is None) == (self.init_from is None):
            raise ValueError("give exactly one of 'model' (a new graft) and 'init_from' (a saved one)")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown training keys: {', '.join(unknown)}")
        return cls(**values)


def augmentation(setting: bool | dict[str, Any], max_seconds: float | None) -> Augmentation | None:
    """TrainConfig.augment as an Augmentation (None when off); a mapping names the strengths it changes."""
    if setting is False:
        return None
    if setting is True:
        return Augmentation(max_seconds=max_seconds)
    strengths = {f.name for f in dataclasses.fields(Augmentation)} - {"max_seconds"}
    if not isinstance(setting, dict) or not set(setting) <= strengths:
        raise ValueError(f"augment must be true, false or a mapping of some of {sorted(strengths)}; got {setting!r}")
    # YAML gives ranges as lists; the dataclass keeps tuples.
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in setting.items()}
    return Augmentation(**values, max_seconds=max_seconds)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient stopped being finite."""


def make_accelerator(config: TrainConfig) -> Accelerator:
    """bf16 autocast on GPU, fp32 on CPU. accelerate keeps one state per process, so every caller asks here."""
    return Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
    )


def build_model(config: TrainConfig, accelerator: Accelerator) -> GraftModel:
    dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    device = str(accelerator.device)
    if config.init_from is not None:
        model = GraftModel.from_pretrained(config.init_from, device=device, dtype=dtype, llm_in_4bit=config.qlora)
    else:
        model = GraftModel.from_config(GraftConfig(**config.model), device=device, dtype=dtype, llm_in_4bit=config.qlora)
    if config.qlora and not isinstance(model.llm, PeftModel):
        # Norms and embeddings to fp32 around the 4-bit layers: the stability half of the QLoRA recipe.
        model.llm = prepare_model_for_kbit_training(model.llm, use_gradient_checkpointing=False)
    make_trainable(model, config.stage, config.lora, config.gradient_checkpointing)
    return model


def make_trainable(
    model: GraftModel, stage: int, lora: LoraSettings, gradient_checkpointing: bool = False
) -> list[torch.nn.Parameter]:
    """Stage 1 trains the projector; stage 2 adds LoRA on the LLM, and trains the encoder's LoRA where the graft has
    one (GraftConfig.encoder_lora; stage 1 never trains it). Returns the parameters that train.

    Frozen bases stay in their storage dtype; what trains is kept in fp32 for the optimizer.
    """
    if stage == 2 and model.config.lora is None:
        model.add_lora(lora)
    for parameter in model.parameters():
        parameter.requires_grad = False
    trainable = list(model.projector.parameters())
    if stage == 2:
        trainable += [p for n, p in model.llm.named_parameters() if "lora_" in n]
        trainable += [p for n, p in model.encoder.named_parameters() if "lora_" in n]
    for parameter in trainable:
        parameter.data = parameter.data.float()
        parameter.requires_grad = True
    if gradient_checkpointing:
        set_gradient_checkpointing(model, True)
    return trainable


def set_gradient_checkpointing(model: GraftModel, enabled: bool) -> None:
    """Recompute the LLM's activations in the backward pass (or stop doing so): less memory, more compute."""
    if enabled:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.llm.gradient_checkpointing_disable()


def trainable_state(model: GraftModel) -> dict[str, torch.Tensor]:
    """Full copies of what trains; under FSDP every process must call it (it gathers the shards)."""
    return {name: _full(p.detach()).cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _shard_like(full: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    if isinstance(parameter, DTensor):
        return distribute_tensor(full.to(parameter.device), parameter.device_mesh, parameter.placements)
    return full


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or resume) one training stage; returns the directory of the final saved graft."""
    # Both manifests, and that their audio exists, are checked before any model loads: a bad line costs no waiting.
    utterances = with_existing_audio(read_training_manifest(config.train_manifest), config.train_manifest)
    dev_utterances = []
    if config.dev_manifest:
        dev_utterances = with_existing_audio(read_manifest(config.dev_manifest), config.dev_manifest)
    accelerator = make_accelerator(config)
    output_dir = Path(config.output_dir)
    torch.manual_seed(config.seed)
    model = build_model(config, accelerator)

    cache = None
    if config.encoder_cache:
        cache = EncoderCache(config.encoder_cache, model.encoder, model.processor, model.config.encoder)
        if accelerator.is_main_process:
            logger.info("encoded %d clips into %s", cache.fill(utterances, config.batch_size), cache.directory)
        accelerator.wait_for_everyone()
    dataset = SpeechDataset(
        utterances,
        augment=augmentation(config.augment, model.processor.max_seconds),
        seed=config.seed,
        max_seconds=model.processor.max_seconds,
        encoder_cache=cache,
    )
    sampler = LengthBucketSampler(
        dataset.durations, config.batch_size, config.max_batch_seconds, seed=config.seed
    )
    collator = SpeechCollator(model.processor, config.instruction, SpecAugment() if config.spec_augment else None)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=config.num_workers)

    parameters = [p for p in model.parameters() if p.requires_grad]
    # One fused kernel for all trained tensors on a GPU (FSDP's sharded tensors take the default implementation).
    fused = accelerator.device.type == "cuda" and accelerator.distributed_type != DistributedType.FSDP
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
    model, optimizer, scheduler, loader = accelerator.prepare(model, optimizer, scheduler, loader)
    graft = accelerator.unwrap_model(model)
    # FSDP replaces the parameters with sharded ones; clip the ones the optimizer now holds.
    parameters = [p for p in model.parameters() if p.requires_grad]

    progress = {"step": 0, "epoch": 0, "batches_done": 0}
    saved_rng = None
    if resume:
        latest = latest_checkpoint(output_dir)
        if latest is None:
            logger.warning("no checkpoint in %s: starting from scratch", output_dir)
        else:
            progress, saved_rng = load_checkpoint(latest, graft, optimizer, scheduler)
            logger.info("resumed from %s at step %d", latest, progress["step"])
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    log = RunLog(output_dir, enabled=accelerator.is_main_process)
    evaluating = bool(config.eval_every and config.dev_manifest)
    if evaluating and accelerator.distributed_type == DistributedType.FSDP:
        # Decoding outside the wrapped forward would meet sharded parameters; score saved checkpoints instead.
        logger.warning("no periodic dev WER under FSDP: run `audiograft eval` on the checkpoints")
        evaluating = False

    model.train()
    # The encoder's base is frozen: no dropout, no batch statistics. An encoder LoRA trains in eval mode too, hence
    # its dropout of 0 (EncoderLoraSettings).
    graft.encoder.eval()
    window = Throughput(graft.encoder.feature_rate)
    while progress["step"] < config.max_steps:
        # accelerate's loader re-sets the epoch from its own counter, which restarts at 0 on resume.
        loader.set_epoch(progress["epoch"])
        sampler.set_epoch(progress["epoch"])
        dataset.set_epoch(progress["epoch"])
        sampler.skip = progress["batches_done"]
        whole_epoch, usable_batches = progress["batches_done"] == 0, 0
        for batch in loader:
            if saved_rng is not None:
                # Starting a loader draws from the global RNG; restore after the first batch, as the
                # uninterrupted run had drawn before its checkpoint.
                restore_rng(saved_rng)
                saved_rng = None
            progress["batches_done"] += 1
            if batch is None:
                continue
            usable_batches += 1
            with accelerator.accumulate(model):
                output = model(**batch, ctc_weight=config.ctc_weight)
                loss = output.loss
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"loss is {loss.item()} at step {progress['step'] + 1}; stopping")
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(parameters, config.grad_clip)
                    if not torch.isfinite(grad_norm):
                        raise TrainingDiverged(f"gradient norm is {grad_norm.item()} at step {progress['step'] + 1}")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            window.add(batch)
            if not accelerator.sync_gradients:
                continue
            progress["step"] += 1
            step = progress["step"]
            if step % config.log_every == 0 or step == config.max_steps:
                loss_parts = (
                    {"answer_loss": output.answer_loss.item(), "ctc_loss": output.ctc_loss.item()}
                    if config.ctc_weight else {}
                )
                log.write(step, epoch=progress["epoch"], loss=loss.item(), **loss_parts, lr=scheduler.get_last_lr()[0],
                          grad_norm=float(grad_norm), **window.rates(accelerator.num_processes))
            if evaluating and step % config.eval_every == 0:
                log.write(step, dev_wer=dev_wer(graft, dev_utterances[: config.eval_utterances], config.batch_size))
                model.train()
                graft.encoder.eval()
            if step % config.save_every == 0 and step < config.max_steps:
                save_checkpoint(output_dir, accelerator, graft, optimizer, scheduler, progress, config.keep_last)
            if step >= config.max_steps:
                break
        else:
            if whole_epoch and not usable_batches:
                # Every utterance was skipped (the warnings name each): another epoch would skip them again, forever.
                raise ValueError(f"{config.train_manifest}: no utterance could be loaded in a whole epoch; stopping")
            progress["epoch"] += 1
            progress["batches_done"] = 0

    accelerator.wait_for_everyone()
    final = output_dir / "final"
    trained = trainable_state(graft)
    if accelerator.is_main_process:
        graft.save_pretrained(final, trained)
    log.close()
    return final


def dev_wer(model: GraftModel, utterances: list[Utterance], batch_size: int) -> float:
    """Corpus WER on dev utterances, through the evaluation code."""
    model.eval()
    return evaluate_model(model, utterances, batch_size=batch_size).wer


class Throughput:
    """Tokens and audio seconds per wall second since the last report; `feature_rate`: log-mel frames per second."""

    def __init__(self, feature_rate: float) -> None:
        self.feature_rate = feature_rate
        self.start, self.tokens, self.audio_seconds, self.samples = time.perf_counter(), 0, 0.0, 0

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        self.tokens += int(batch["attention_mask"].sum())
        self.audio_seconds += float(batch["feature_lengths"].sum()) / self.feature_rate
        self.samples += int(batch["feature_lengths"].shape[0])

    def rates(self, processes: int) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rates = {
            "tokens_per_s": processes * self.tokens / elapsed,
            "audio_s_per_s": processes * self.audio_seconds / elapsed,
            "samples_per_s": processes * self.samples / elapsed,
        }
        self.__init__(self.feature_rate)
        return rates


class RunLog:
    """JSONL always; TensorBoard too where it is installed."""

    def __init__(self, output_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = output_dir / LOG_NAME
        self.tensorboard = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:
                logger.info("tensorboard is not installed: logging to %s only", self.path)

    def write(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")
        if self.tensorboard is not None:
            for name, value in values.items():
                self.tensorboard.add_scalar(name, value, step)
        logger.info("step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in values.items()))

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a training run directory")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_checkpoint(
    output_dir: Path, accelerator: Accelerator, model: GraftModel, optimizer, scheduler, progress: dict, keep_last: int
) -> Path:
    """Write checkpoint-STEP atomically (a temporary directory, then one rename) and prune old ones.

    Every process calls it (sharded state is gathered collectively); the main process writes.
    """
    final = output_dir / f"{CHECKPOINT_PREFIX}{progress['step']:08d}"
    trained = trainable_state(model)
    optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer.state_dict())
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return final
    with atomic_path(final, directory=True) as temporary:
        model.save_pretrained(temporary / "graft", trained)
        save_file(trained, temporary / "trainable.safetensors")
        save_file(optimizer_tensors, temporary / "optimizer.safetensors")
        save_file({"torch": torch.get_rng_state(), **_cuda_rng_states()}, temporary / "rng.safetensors")
        meta = {"progress": progress, "optimizer": optimizer_meta, "scheduler": scheduler.state_dict()}
        (temporary / "state.json").write_text(json.dumps(meta))
    for old in sorted(output_dir.glob(f"{CHECKPOINT_PREFIX}*"))[:-keep_last]:
        shutil.rmtree(old)
    logger.info("saved %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(path: Path, model: GraftModel, optimizer, scheduler) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore what trains, the optimizer and the scheduler; returns progress and the RNG state to restore."""
    meta = json.loads((path / "state.json").read_text())
    trainable = load_file(path / "trainable.safetensors")
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in trainable.items():
            parameters[name].copy_(_shard_like(value, parameters[name]))
    state = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta["optimizer"])
    optimized = [p for group in optimizer.param_groups for p in group["params"]]
    for param_id, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor) and value.shape == optimized[param_id].shape:
                values[key] = _shard_like(value, optimized[param_id])
    optimizer.load_state_dict(state)
    scheduler.load_state_dict(meta["scheduler"])
    return meta["progress"], load_file(path / "rng.safetensors")


def restore_rng(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available() and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(output_dir.glob(f"{CHECKPOINT_PREFIX}*"))
    return checkpoints[-1] if checkpoints else None


def _cuda_rng_states() -> dict[str, torch.Tensor]:
    return {"cuda": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {}


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as safetensors (tensors) plus JSON (the rest): no pickle in checkpoints."""
    tensors, scalars = {}, {}
    for param_id, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = _full(value.detach()).cpu().contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
        param_id, key = flat.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def plot_run(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Loss, learning rate, gradient norm, throughput and dev WER against step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(run_dir)
    panels = [k for k in ("loss", "lr", "grad_norm", "samples_per_s", "dev_wer") if any(k in r for r in records)]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], panels):
        points = [(r["step"], r[key]) for r in records if key in r]
        axis.plot(*zip(*points), marker="o" if len(points) < 30 else None)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("optimizer step")
    figure.suptitle(Path(run_dir).name)
    figure.tight_layout()
    output = Path(output) if output else Path(run_dir) / "curves.png"
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output

