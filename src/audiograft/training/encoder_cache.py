"""An on-disk cache of the frozen encoder's output, for multi-epoch training.

The encoder is frozen in both stages unless the graft has an encoder LoRA, which the cache refuses. Without waveform
augmentation or SpecAugment a clip's encoder frames are the same every epoch, so they are computed once and later
epochs skip audio decoding, log-mel and the encoder. One safetensors file per clip, named by a hash of the audio
file's path, size and modification time, under a directory named by the encoder and how it is run (context, dtype,
the layer that gives the frames): a changed file, another encoder or another layer never hits a stale entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file

from audiograft.audio.io import AudioError, run_on_loaded
from audiograft.files import atomic_path
from audiograft.manifest import Utterance
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.encoders import AudioEncoder, load_encoder
from audiograft.modeling.processor import GraftProcessor
from audiograft.presets.pretrained import resolve_base, resolve_model_dir

logger = logging.getLogger(__name__)


class EncoderCache:
    """`processor` computes the log-mel features that `encoder` encodes, on the encoder's device."""

    def __init__(self, directory: str | Path, encoder: AudioEncoder, processor: GraftProcessor, encoder_name: str):
        if encoder.has_lora:
            # Its frames change as the adapter trains, and the fingerprint cannot name the adapter's weights.
            raise ValueError("the encoder cache needs a frozen encoder: this one has a LoRA adapter (encoder_lora)")
        self.encoder = encoder
        self.processor = processor
        dtype = str(next(encoder.parameters()).dtype)
        identity = f"{encoder_name}|{encoder.context}|{dtype}"
        if encoder.used_layers < len(encoder.model.layers):
            # Frames of a lower layer; the whole encoder's keep their old fingerprint, so existing caches still hit.
            identity += f"|layers={encoder.used_layers}"
        self.directory = Path(directory) / hashlib.sha1(identity.encode()).hexdigest()[:16]

    @classmethod
    def of_saved_graft(cls, directory: str | Path, model: str | Path = "default") -> EncoderCache:
        """A cache of a saved graft's encoder ("default": the built-in model's), run as the graft runs it and loaded
        without its LLM: the frames the graft's word aligner reads."""
        config = GraftConfig.load(resolve_model_dir(model))
        encoder = load_encoder(resolve_base(config.encoder), config.encoder_context, layer=config.encoder_layer)
        return cls(directory, encoder, GraftProcessor.from_pretrained(model), config.encoder)

    def path(self, audio: str | Path) -> Path:
        audio = Path(audio).resolve()
        stat = audio.stat()
        key = hashlib.sha1(f"{audio}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.safetensors"

    def load(self, audio: str | Path) -> tuple[torch.Tensor, int]:
        """The clip's encoder frames (frames, d_encoder) and its log-mel length."""
        tensors = load_file(self.path(audio))
        return tensors["frames"], int(tensors["feature_length"])

    @torch.inference_mode()
    def fill(self, utterances: Sequence[Utterance], batch_size: int = 16) -> int:
        """Encode every clip not cached yet, shortest first in batches; returns how many were encoded.

        Clips that cannot be read are left out here; the dataset reports them when it meets them.
        """
        missing = []
        for utterance in utterances:
            try:
                if not self.path(utterance.audio).is_file():
                    missing.append(utterance)
            except OSError:
                continue
        missing.sort(key=lambda u: u.duration)
        with Progress(transient=True) as progress:
            task = progress.add_task("caching encoder output", total=len(missing))
            device = next(self.encoder.parameters()).device
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                encoded = run_on_loaded([u.audio for u in batch], lambda waveforms: self.encoder.encode_clips(
                    *self.processor.featurize(waveforms, device)), self.processor.max_seconds)
                for utterance, result in zip(batch, encoded):
                    if isinstance(result, AudioError):
                        logger.warning("not cached: %s", result)
                    else:
                        self._write(utterance.audio, *result)
                progress.advance(task, len(batch))
        return len(missing)

    def _write(self, audio: Path, frames: torch.Tensor, feature_length: int) -> None:
        with atomic_path(self.path(audio)) as temporary:
            save_file({"frames": frames.cpu().contiguous(), "feature_length": torch.tensor(feature_length)}, temporary)
