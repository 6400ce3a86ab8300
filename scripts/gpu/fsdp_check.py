"""FSDP check on a 2-GPU machine: same loss as one GPU at the same global batch, and exact resume under FSDP.

Speed and sharding do not depend on weight values, so the bases are the default preset's architectures
(whisper-base encoder, SmolLM2-135M) with random weights, and the clips are synthetic tones with random
word sequences for text. Run from the repository root:
    python scripts/gpu/fsdp_check.py prepare /tmp/fsdp
    CUDA_VISIBLE_DEVICES=0 python -m audiograft train /tmp/fsdp/single.yaml
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m audiograft train /tmp/fsdp/fsdp.yaml
    python scripts/gpu/fsdp_check.py resume-from /tmp/fsdp 40
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m audiograft train /tmp/fsdp/resumed.yaml --resume
    python scripts/gpu/fsdp_check.py report /tmp/fsdp
"""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml
from safetensors.torch import load_file
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import build_tokenizer  # noqa: E402  (the tests' small BPE tokenizer with a chat template)

from audiograft.manifest import Utterance, write_manifest
from audiograft.modeling.config import LoraSettings  # noqa: E402
from audiograft.training.loop import TrainConfig, read_log  # noqa: E402

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def prepare(root: Path) -> None:
    torch.manual_seed(0)
    whisper = WhisperConfig(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
                            decoder_layers=1, decoder_attention_heads=8, decoder_ffn_dim=256, num_mel_bins=80)
    WhisperForConditionalGeneration(whisper).save_pretrained(root / "whisper")
    tokenizer = build_tokenizer()
    smollm2 = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
                          max_position_embeddings=8192, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(smollm2).save_pretrained(root / "smollm2")
    tokenizer.save_pretrained(root / "smollm2")

    rng = np.random.default_rng(0)
    utterances = []
    for index in range(512):
        words = rng.choice(WORDS, size=rng.integers(2, 8))
        seconds = 0.4 * len(words)
        t = np.arange(int(seconds * 16000)) / 16000
        pitches = np.repeat([200 + 40 * WORDS.index(w) for w in words], t.size // len(words) + 1)[: t.size]
        clip = 0.3 * np.sin(2 * np.pi * pitches * t) + 0.01 * rng.standard_normal(t.size)
        path = root / "clips" / f"{index}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, clip.astype(np.float32), 16000)
        utterances.append(Utterance(path, " ".join(words), seconds))
    write_manifest(root / "train.jsonl", utterances)

    base = TrainConfig(
        output_dir="", train_manifest=str(root / "train.jsonl"),
        model={"encoder": str(root / "whisper"), "llm": str(root / "smollm2"), "projector": "stack", "downsample": 4},
        stage=2, lora=LoraSettings(r=16, alpha=32), batch_size=16, lr=1e-3, warmup_steps=10, max_steps=60,
        log_every=1, save_every=20, keep_last=3, num_workers=4, seed=0,
    )
    # The same global batch: 16 on one GPU, 8 on each of two.
    for name, batch in (("single", 16), ("fsdp", 8), ("resumed", 8)):
        config = dataclasses.replace(base, output_dir=str(root / name), batch_size=batch)
        (root / f"{name}.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(config)))))


def resume_from(root: Path, step: int) -> None:
    """Start `resumed` from the FSDP run's checkpoint at `step`, as if that run had been killed there."""
    name = f"checkpoint-{step:08d}"
    target = root / "resumed"
    target.mkdir(exist_ok=True)
    shutil.copytree(root / "fsdp" / name, target / name, dirs_exist_ok=True)


def report(root: Path) -> None:
    single = {r["step"]: r["loss"] for r in read_log(root / "single") if "loss" in r}
    fsdp = {r["step"]: r["loss"] for r in read_log(root / "fsdp") if "loss" in r}
    steps = sorted(set(single) & set(fsdp))
    differences = np.array([fsdp[s] - single[s] for s in steps])
    expected = load_file(root / "fsdp" / "final" / "projector.safetensors")
    resumed = load_file(root / "resumed" / "final" / "projector.safetensors")
    lora_expected = load_file(root / "fsdp" / "final" / "lora" / "adapter_model.safetensors")
    lora_resumed = load_file(root / "resumed" / "final" / "lora" / "adapter_model.safetensors")
    resume_diff = max(
        [float((expected[k].float() - resumed[k].float()).abs().max()) for k in expected]
        + [float((lora_expected[k].float() - lora_resumed[k].float()).abs().max()) for k in lora_expected]
    )
    result = {
        "steps": len(steps),
        "single_first_last": [single[steps[0]], single[steps[-1]]],
        "fsdp_first_last": [fsdp[steps[0]], fsdp[steps[-1]]],
        "loss_difference_mean": float(differences.mean()),
        "loss_difference_sd": float(differences.std()),
        "loss_difference_max_abs": float(np.abs(differences).max()),
        "resumed_vs_uninterrupted_max_abs_weight_diff": resume_diff,
        "single_samples_per_s": float(np.median([r["samples_per_s"] for r in read_log(root / "single") if "samples_per_s" in r])),
        "fsdp_samples_per_s": float(np.median([r["samples_per_s"] for r in read_log(root / "fsdp") if "samples_per_s" in r])),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    command, root = sys.argv[1], Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    {"prepare": lambda: prepare(root), "resume-from": lambda: resume_from(root, int(sys.argv[3])),
     "report": lambda: report(root)}[command]()
