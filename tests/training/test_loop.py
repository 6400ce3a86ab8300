import io
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import config_for
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from audiograft.manifest import ManifestError, Utterance, read_manifest, write_manifest
from audiograft.modeling.config import GraftConfig, LoraSettings
from audiograft.training.loop import (
    TrainConfig,
    TrainingDiverged,
    build_model,
    make_accelerator,
    plot_run,
    read_log,
    train,
)


def test_stage_parameters_that_train(base_models, manifest, tmp_path):
    accelerator = make_accelerator(config_for(base_models, manifest, tmp_path))
    stage1 = build_model(config_for(base_models, manifest, tmp_path), accelerator)
    trainable = {n for n, p in stage1.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in stage1.projector.named_parameters(prefix="projector")}

    config = config_for(base_models, manifest, tmp_path, stage=2, lora=LoraSettings(r=2, alpha=4))
    stage2 = build_model(config, accelerator)
    trainable = {n for n, p in stage2.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if "lora_" in n}
    assert trainable - lora == {n for n, _ in stage2.projector.named_parameters(prefix="projector")}
    assert lora and all(n.startswith("llm.") for n in lora)
    assert len(lora) == 2 * 7 * 2  # A and B for 7 linear kinds in each of 2 layers
    assert not any(p.requires_grad for p in stage2.encoder.parameters())

    vl = config_for(base_models, manifest, tmp_path, stage=2,
                    model={"encoder": str(base_models["whisper"]), "llm": str(base_models["qwen2_vl"])})
    vl_model = build_model(vl, accelerator)
    assert not any("visual" in n for n, p in vl_model.named_parameters() if p.requires_grad)


def test_qlora_stage2_trains_lora_over_a_4bit_llm(base_models, manifest, tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes
    from conftest import save_causal_lm

    # bitsandbytes' CPU kernels need layer widths in multiples of 64.
    llm = save_causal_lm(tmp_path / "llama64", "llama", hidden_size=64, intermediate_size=128)
    config = config_for(base_models, manifest, tmp_path / "run", stage=2, qlora=True, max_steps=6,
                        lora=LoraSettings(r=4, alpha=8), model={"encoder": str(base_models["whisper"]), "llm": str(llm)})
    model = build_model(config, make_accelerator(config))
    quantized = [n for n, m in model.llm.named_modules() if isinstance(m, bitsandbytes.nn.Linear4bit)]
    assert len(quantized) == 2 * 7
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if "lora_" not in n} == {n for n, _ in model.projector.named_parameters(prefix="projector")}

    final = train(config)
    losses = [r["loss"] for r in read_log(tmp_path / "run") if "loss" in r]
    assert len(losses) == 6 and all(map(math.isfinite, losses))
    assert (final / "lora" / "adapter_model.safetensors").is_file()
    with pytest.raises(ValueError, match="qlora applies to stage 2"):
        config_for(base_models, manifest, tmp_path, qlora=True)


def test_two_stages_on_cpu_reduce_the_loss_and_save_adapters(base_models, manifest, tmp_path):
    stage1 = train(config_for(base_models, manifest, tmp_path / "s1", max_steps=12, dev_manifest=str(manifest),
                              eval_every=12, eval_utterances=3))
    losses = [r["loss"] for r in read_log(tmp_path / "s1") if "loss" in r]
    assert [(r["step"], r["dev_wer"] >= 0) for r in read_log(tmp_path / "s1") if "dev_wer" in r] == [(12, True)]
    assert len(losses) == 12 and min(losses[-3:]) < losses[0]
    assert {"lr", "grad_norm", "tokens_per_s", "audio_s_per_s", "samples_per_s"} <= set(read_log(tmp_path / "s1")[0])
    assert (stage1 / "projector.safetensors").is_file()

    stage2 = train(config_for(base_models, manifest, tmp_path / "s2", model=None, init_from=str(stage1), stage=2,
                              lora=LoraSettings(r=4, alpha=8), max_steps=4))
    assert (stage2 / "lora" / "adapter_model.safetensors").is_file()
    assert plot_run(tmp_path / "s2").stat().st_size > 5000
    checkpoints = sorted(p.name for p in (tmp_path / "s1").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-00000004", "checkpoint-00000008"]  # keep_last=2 of 4, 8 (12 is final)


def test_stage2_from_a_stage2_graft_trains_its_lora_further(base_models, manifest, tmp_path):
    # Training over several leases: a run starts from the last lease's final graft, LoRA included.
    first = train(config_for(base_models, manifest, tmp_path / "a", stage=2, lora=LoraSettings(r=4, alpha=8),
                             max_steps=3))
    config = config_for(base_models, manifest, tmp_path / "b", model=None, init_from=str(first), stage=2,
                        lora=LoraSettings(r=4, alpha=8), max_steps=3, seed=1)
    model = build_model(config, make_accelerator(config))
    assert len([n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]) == 2 * 7 * 2
    second = train(config)
    before = load_file(first / "lora" / "adapter_model.safetensors")
    after = load_file(second / "lora" / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before if "lora_B" in name)


def test_ctc_weight_trains_with_the_auxiliary_loss_and_logs_both_parts(base_models, manifest, tmp_path):
    train(config_for(base_models, manifest, tmp_path / "ctc", max_steps=4, log_every=2, ctc_weight=0.5))
    logged = [r for r in read_log(tmp_path / "ctc") if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4]
    for record in logged:
        assert record["ctc_loss"] > 0
        assert math.isclose(record["loss"], record["answer_loss"] + 0.5 * record["ctc_loss"], rel_tol=1e-5)
    with pytest.raises(ValueError, match="ctc_weight"):
        config_for(base_models, manifest, tmp_path / "bad", ctc_weight=-1.0)


def test_nan_loss_stops_with_the_step(base_models, manifest, tmp_path, monkeypatch):
    from audiograft.modeling.model import GraftModel

    calls = []
    original = GraftModel.forward

    def forward_that_diverges_on_the_third_batch(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(GraftModel, "forward", forward_that_diverges_on_the_third_batch)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 3"):
        train(config_for(base_models, manifest, tmp_path, max_steps=5))


def test_both_manifests_and_their_audio_are_checked_before_a_model_is_loaded(base_models, manifest, tmp_path,
                                                                              monkeypatch):
    def no_model(*_):
        raise AssertionError("a model was loaded before the manifests were checked")

    monkeypatch.setattr("audiograft.training.loop.build_model", no_model)
    bad_dev = tmp_path / "dev.jsonl"
    bad_dev.write_text(manifest.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ManifestError, match="dev.jsonl:2: not valid JSON"):
        train(config_for(base_models, manifest, tmp_path, dev_manifest=str(bad_dev)))
    no_audio = tmp_path / "no_audio.jsonl"
    no_audio.write_text('{"audio": "gone.wav", "text": "x", "duration": 1.0}\n')
    with pytest.raises(ManifestError, match="no_audio.jsonl: none of its 1 audio files exists"):
        train(config_for(base_models, no_audio, tmp_path))
    held_out = tmp_path / "with_dev.jsonl"
    held_out.write_text(manifest.read_text() + '{"audio": "a.wav", "text": "x", "duration": 1.0, "split": "dev"}\n')
    with pytest.raises(ManifestError, match="split 'dev' is held out for evaluation"):
        train(config_for(base_models, held_out, tmp_path))


def test_a_missing_audio_file_is_warned_about_once_not_every_epoch(base_models, manifest, tmp_path, caplog):
    utterances = read_manifest(manifest)
    utterances.insert(3, Utterance(tmp_path / "gone.wav", "lost", 1.0))
    with_gap = write_manifest(tmp_path / "train.jsonl", utterances)
    train(config_for(base_models, with_gap, tmp_path / "run", max_steps=9))  # 4 batches an epoch: 3 epochs
    warnings = [record.getMessage() for record in caplog.records if "gone.wav" in record.getMessage()]
    assert warnings == [f"{with_gap}: 1 of 13 audio files do not exist; their utterances are left out: "
                        f"line 4 ({tmp_path / 'gone.wav'})"]


def test_training_stops_when_no_utterance_can_be_loaded_instead_of_looping(base_models, tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF not really a wave file")
    unreadable = write_manifest(tmp_path / "train.jsonl", [Utterance(tmp_path / "a.wav", "x", 1.0),
                                                            Utterance(tmp_path / "b.wav", "y", 1.0)])
    with pytest.raises(ValueError, match="train.jsonl: no utterance could be loaded in a whole epoch"):
        train(config_for(base_models, unreadable, tmp_path / "run"))


def _launch(config_path, resume=False):
    command = [sys.executable, "-m", "audiograft", "train", str(config_path)] + (["--resume"] if resume else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_resume_after_sigkill_gives_the_same_weights(base_models, manifest, tmp_path):
    def write_config(name, **overrides):
        config = config_for(base_models, manifest, tmp_path / name, max_steps=40, save_every=5, spec_augment=True,
                            stage=2, lora=LoraSettings(r=4, alpha=8, dropout=0.1), **overrides)
        path = tmp_path / f"{name}.yaml"
        values = json.loads(json.dumps(config.__dict__, default=lambda o: o.__dict__))
        path.write_text(yaml.safe_dump(values))
        return path

    straight = _launch(write_config("straight"))
    assert straight.wait(timeout=600) == 0, straight.stderr.read().decode()[-3000:]

    interrupted_config = write_config("interrupted")
    victim = _launch(interrupted_config)
    deadline = time.time() + 300
    while not (tmp_path / "interrupted" / "checkpoint-00000010").exists():
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "interrupted" / "final").exists()

    resumed = _launch(interrupted_config, resume=True)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-3000:]
    resumed_log = read_log(tmp_path / "interrupted")
    assert resumed_log[-1]["step"] == 40

    expected = load_file(tmp_path / "straight" / "final" / "projector.safetensors")
    actual = load_file(tmp_path / "interrupted" / "final" / "projector.safetensors")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5)
    lora_expected = load_file(tmp_path / "straight" / "final" / "lora" / "adapter_model.safetensors")
    lora_actual = load_file(tmp_path / "interrupted" / "final" / "lora" / "adapter_model.safetensors")
    for name in lora_expected:
        torch.testing.assert_close(lora_actual[name], lora_expected[name], atol=1e-6, rtol=1e-5)



def checkpointing(llm) -> bool:
    """transformers 5 renames `is_gradient_checkpointing` (deprecated) to `is_activation_checkpointing`."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    return base.is_activation_checkpointing if hasattr(type(base), "is_activation_checkpointing") \
        else base.is_gradient_checkpointing


def test_gradient_checkpointing_recomputes_layers_and_changes_no_loss(base_models, manifest, tmp_path, monkeypatch):
    from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP

    # Counted inside the layer: transformers wraps a decoder layer's own `forward` with the checkpointing.
    layer_calls, forward = [], Qwen2MLP.forward
    monkeypatch.setattr(Qwen2MLP, "forward", lambda *a, **kw: layer_calls.append(1) or forward(*a, **kw))
    losses, calls = {}, {}
    for on in (False, True):
        layer_calls.clear()
        run = tmp_path / f"checkpointing-{on}"
        train(config_for(base_models, manifest, run, stage=2, lora=LoraSettings(r=4, alpha=8, dropout=0.1),
                         max_steps=4, save_every=100, gradient_checkpointing=on))
        losses[on], calls[on] = [r["loss"] for r in read_log(run) if "loss" in r], len(layer_calls)
    assert len(losses[False]) == 4 and len(set(losses[False])) > 1
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert calls[False] == 4 * 2 and calls[True] == 2 * calls[False]  # 4 steps x 2 layers, each recomputed once


def test_make_trainable_turns_on_gradient_checkpointing_in_the_llm(base_models):
    from audiograft.modeling.config import GraftConfig
    from audiograft.modeling.model import GraftModel
    from audiograft.training.loop import make_trainable, set_gradient_checkpointing

    config = GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]))
    plain = GraftModel.from_config(config)
    make_trainable(plain, 2, LoraSettings(r=2, alpha=4))
    assert not checkpointing(plain.llm)
    model = GraftModel.from_config(config)
    trainable = make_trainable(model, 2, LoraSettings(r=2, alpha=4), gradient_checkpointing=True)
    assert checkpointing(model.llm)
    assert trainable and all(p.requires_grad and p.dtype == torch.float32 for p in trainable)
    set_gradient_checkpointing(model, False)
    assert not checkpointing(model.llm)


def pickled_modules_and_size(value) -> tuple[list[str], int]:
    """The torch modules pickling `value` would copy (as into each data-loader worker), and the pickle's size."""
    modules = []

    class Spy(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.nn.Module):
                modules.append(type(obj).__name__)
            return None

    buffer = io.BytesIO()
    Spy(buffer).dump(value)
    return modules, buffer.tell()


def test_loader_workers_get_the_processor_never_the_model(base_models, manifest, tmp_path, monkeypatch):
    import audiograft.training.loop as loop

    loaders = []
    monkeypatch.setattr(loop, "DataLoader", lambda *args, **kwargs: loaders.append(kwargs) or DataLoader(*args, **kwargs))
    train(config_for(base_models, manifest, tmp_path, max_steps=1, save_every=1))
    collator = loaders[0]["collate_fn"]
    modules, size = pickled_modules_and_size(collator)
    assert modules == []
    assert size < 2**20  # the tokenizer and the mel filters; the LLM's weights would be gigabytes


def test_augment_takes_true_false_or_the_strengths_to_change(base_models, manifest, tmp_path):
    from audiograft.audio.augment import Augmentation
    from audiograft.training.loop import augmentation

    assert augmentation(False, 30.0) is None
    assert augmentation(True, 30.0) == Augmentation(max_seconds=30.0)
    stronger = augmentation({"noise_probability": 0.9, "snr_range_db": [0, 20]}, 30.0)
    assert stronger == Augmentation(noise_probability=0.9, snr_range_db=(0, 20), max_seconds=30.0)
    for bad in ({"noise": 0.9}, {"max_seconds": 5}, "strong"):
        with pytest.raises(ValueError, match="augment must be"):
            config_for(base_models, manifest, tmp_path, augment=bad)


def _graft_with_encoder_lora(base_models):
    from audiograft.modeling.config import EncoderLoraSettings, GraftConfig
    from audiograft.modeling.model import GraftModel

    torch.manual_seed(0)
    config = GraftConfig(encoder=str(base_models["whisper"]), llm=str(base_models["qwen2"]),
                         encoder_lora=EncoderLoraSettings(r=2, top_layers=1))
    return GraftModel.from_config(config)


def _backward_on_answers(model) -> None:
    from conftest import make_clips

    model.train()
    model.encoder.eval()  # as the training loop runs it
    batch = model.processor(make_clips([1.0, 1.6]), answers=["hello world", "the fox"])
    model(**batch).loss.backward()


def test_stage_2_trains_the_encoder_lora_and_nothing_else_of_the_encoder(base_models):
    from audiograft.training.loop import make_trainable

    model = _graft_with_encoder_lora(base_models)
    trainable = make_trainable(model, 2, LoraSettings(r=2, alpha=4))
    encoder_lora = {n: p for n, p in model.encoder.named_parameters() if "lora_" in n}
    assert encoder_lora and all(p.requires_grad and p.dtype == torch.float32 for p in encoder_lora.values())
    assert {id(p) for p in encoder_lora.values()} <= {id(p) for p in trainable}
    with torch.no_grad():
        for name, parameter in encoder_lora.items():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)  # with B at zero, A would get no gradient
    _backward_on_answers(model)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder_lora.values())
    assert all(p.grad is None for n, p in model.encoder.named_parameters() if "lora_" not in n)


def test_stage_1_leaves_the_encoder_lora_frozen(base_models):
    from audiograft.training.loop import make_trainable

    model = _graft_with_encoder_lora(base_models)
    make_trainable(model, 1, LoraSettings(r=2, alpha=4))
    assert not any(p.requires_grad for p in model.encoder.parameters())
    _backward_on_answers(model)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())


def test_stage_2_with_encoder_lora_saves_the_trained_adapter_beside_the_projector(base_models, manifest, tmp_path):
    from audiograft.modeling.model import ENCODER_LORA_WEIGHTS, GraftModel

    model = {"encoder": str(base_models["whisper"]), "llm": str(base_models["qwen2"]),
             "encoder_lora": {"r": 2, "top_layers": 1}}
    final = train(config_for(base_models, manifest, tmp_path / "run", model=model, stage=2,
                             lora=LoraSettings(r=2, alpha=4), max_steps=4, save_every=2))
    adapter = load_file(final / ENCODER_LORA_WEIGHTS)
    assert adapter and all(name.startswith("layers.1.") and "lora_" in name for name in adapter)
    # B starts at zero; training moved it, and the file holds the trained values, not the initial ones.
    assert all(value.abs().sum() > 0 for name, value in adapter.items() if "lora_B" in name)
    # Checkpoints carry the encoder adapter too, so that a resumed run continues it.
    checkpoint = tmp_path / "run" / "checkpoint-00000002"
    resumable = load_file(checkpoint / "trainable.safetensors")
    assert {f"encoder.model.{name}" for name in adapter} <= set(resumable)
    assert set(load_file(checkpoint / "graft" / ENCODER_LORA_WEIGHTS)) == set(adapter)
    restored = GraftModel.from_pretrained(final)
    for name, value in restored.encoder.lora_state_dict().items():
        torch.testing.assert_close(value, adapter[name])


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "accelerate"),
                         ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_training_config_in_the_repository_reads(path):
    # A lease that meets a misspelt key loses its GPU minutes; reading the configs here costs nothing.
    config = TrainConfig.from_yaml(path)
    assert config.max_steps > 0 and config.output_dir.startswith("runs/")
    if config.model is not None:
        GraftConfig(**config.model)
