"""Tiny random base models built in code and saved to disk, so tests exercise the real loading path."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    ProcessorMixin,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

from audiograft.bench.architectures import CHATML, chatml_tokenizer
from audiograft.manifest import Utterance, write_manifest
from audiograft.modeling.config import GraftConfig
from audiograft.modeling.encoders import read_encoder_config
from audiograft.modeling.processor import AudioSettings, GraftProcessor
from audiograft.training.loop import TrainConfig

REPOSITORY = Path(__file__).parents[1]
TOKENIZER = chatml_tokenizer()
VOCAB = len(TOKENIZER)
ENCODER_KW = dict(
    num_mel_bins=80,
    d_model=32,
    encoder_layers=2,
    encoder_attention_heads=4,
    encoder_ffn_dim=64,
    max_source_positions=1500,
)
LLM_KW = dict(
    vocab_size=VOCAB,
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    tie_word_embeddings=False,
)

# A chat template whose assistant turns end with the EOS token that is also the pad token.
EOS_ENDED_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}<|endoftext|>{% else %}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def save_whisper(path: Path) -> Path:
    _seeded(0)
    config = WhisperConfig(
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
        max_target_positions=64,
        **ENCODER_KW,
    )
    WhisperForConditionalGeneration(config).save_pretrained(path)
    return path


def save_causal_lm(path: Path, family: str, **overrides) -> Path:
    _seeded(1)
    special = dict(
        bos_token_id=TOKENIZER.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=TOKENIZER.eos_token_id,
        pad_token_id=TOKENIZER.pad_token_id,
    )
    if family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**{**LLM_KW, **overrides}, **special))
    else:
        model = LlamaForCausalLM(LlamaConfig(**{**LLM_KW, **overrides}, **special))
    model.save_pretrained(path)
    TOKENIZER.save_pretrained(path)
    return path


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without its video processor, which needs torchvision (no CPU build here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.image_token = tokenizer.image_token
        self.video_token = "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)


def vision_processor_class():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return ImageOnlyQwen2VLProcessor
    return Qwen2VLProcessor


def save_qwen2_vl(path: Path) -> Path:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    _seeded(2)
    ids = TOKENIZER.convert_tokens_to_ids
    text_config = dict(
        LLM_KW, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2]}
    )
    config = Qwen2VLConfig(
        text_config=text_config,
        vision_config=dict(depth=1, embed_dim=32, hidden_size=48, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    parts = dict(image_processor=image_processor, tokenizer=TOKENIZER, chat_template=CHATML)
    processor_class = vision_processor_class()
    if processor_class is Qwen2VLProcessor:
        from transformers import Qwen2VLVideoProcessor

        parts["video_processor"] = Qwen2VLVideoProcessor()
    processor_class(**parts).save_pretrained(path)
    return path


def save_qwen2_audio(path: Path) -> Qwen2AudioForConditionalGeneration:
    _seeded(3)
    config = Qwen2AudioConfig(
        audio_config=dict(ENCODER_KW, model_type="qwen2_audio_encoder"),
        text_config=dict(LLM_KW, model_type="qwen2"),
        audio_token_id=TOKENIZER.convert_tokens_to_ids("<|AUDIO|>"),
    )
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    return model


@pytest.fixture(autouse=True)
def _vision_processor_without_torchvision(monkeypatch):
    processor_class = vision_processor_class()
    if processor_class is not Qwen2VLProcessor:
        monkeypatch.setattr("audiograft.modeling.llms.AutoProcessor", processor_class)


@pytest.fixture(scope="session")
def base_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {
        "whisper": save_whisper(root / "whisper"),
        "qwen2": save_causal_lm(root / "qwen2", "qwen2"),
        "llama": save_causal_lm(root / "llama", "llama"),
        "qwen2_vl": save_qwen2_vl(root / "qwen2_vl"),
    }


def processor_for(encoder_dir: Path, tokenizer=TOKENIZER, **config) -> GraftProcessor:
    """A processor for the encoder saved at `encoder_dir`, built from configs alone (no model loaded)."""
    settings = AudioSettings.from_encoder_config(read_encoder_config(str(encoder_dir)))
    return GraftProcessor(tokenizer, GraftConfig(encoder=str(encoder_dir), llm="unused", **config), settings)


def write_lines(path: Path, records: list) -> Path:
    """A manifest file of these records (dicts as JSON; strings as they are, e.g. a broken line)."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def deb_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A minimal .deb: an ar archive of debian-binary, control.tar.xz and data.tar.xz (files, and symbolic links
    from a path to its target)."""
    def tar(entries, links):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            for name, target in links.items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, target
                archive.addfile(info)
        return buffer.getvalue()

    members = {"debian-binary": b"2.0\n", "control.tar.xz": tar({"./control": b"Package: x\n"}, {}),
               "data.tar.xz": tar(files, links or {})}
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + b"\n" * (len(data) % 2)
    return out


def make_clips(durations: list[float], seed: int = 0) -> list[np.ndarray]:
    """Noise-like clips with a tone whose pitch depends on the clip, so clips differ in content."""
    rng = np.random.default_rng(seed)
    clips = []
    for index, seconds in enumerate(durations):
        t = np.arange(int(seconds * 16000)) / 16000
        tone = 0.3 * np.sin(2 * np.pi * (200 + 150 * index) * t)
        clips.append((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


# The tiny training corpus and run config shared by the training and encoder-cache tests.
WORDS = ["the fox", "hello world", "lazy dog", "transcribe the audio", "quick brown fox", "world"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    utterances = []
    for index, clip in enumerate(make_clips([0.5 + 0.1 * i for i in range(12)], seed=4)):
        path = root / f"{index}.wav"
        soundfile.write(path, clip, 16000)
        utterances.append(Utterance(path, WORDS[index % len(WORDS)], clip.size / 16000))
    return write_manifest(root / "train.jsonl", utterances)


def config_for(base_models, manifest, output_dir, **overrides):
    values = dict(
        output_dir=str(output_dir),
        train_manifest=str(manifest),
        model={"encoder": str(base_models["whisper"]), "llm": str(base_models["qwen2"])},
        batch_size=3,
        lr=3e-3,
        warmup_steps=2,
        max_steps=8,
        log_every=1,
        save_every=4,
        seed=7,
    )
    values.update(overrides)
    return TrainConfig(**values)


def load_script(relative_path: str):
    """A standalone script of the repository (scripts/, benchmarks/) imported as a module, to test its functions."""
    path = REPOSITORY / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
