"""The plumbing is right: a GraftModel configured like Qwen2-Audio reproduces transformers' own model."""

import torch
from conftest import TOKENIZER, make_clips, save_qwen2_audio
from transformers import Qwen2ForCausalLM

from audiograft.modeling.config import GraftConfig
from audiograft.modeling.model import GraftModel


def test_graft_matches_qwen2_audio_logits_and_greedy_tokens(tmp_path):
    reference = save_qwen2_audio(tmp_path / "qwen2_audio")
    llm = Qwen2ForCausalLM(reference.config.text_config)
    llm.model.load_state_dict(reference.model.language_model.state_dict())
    llm.lm_head.load_state_dict(reference.lm_head.state_dict())
    llm.save_pretrained(tmp_path / "llm")
    TOKENIZER.save_pretrained(tmp_path / "llm")

    config = GraftConfig(
        encoder=str(tmp_path / "qwen2_audio"),
        llm=str(tmp_path / "llm"),
        projector="linear",
        downsample=1,
        projector_bias=True,
        encoder_context="full",  # Qwen2-Audio pads to 30 s and masks the padding
    )
    graft = GraftModel.from_config(config).eval()
    graft.projector.load_state_dict(reference.model.multi_modal_projector.state_dict())

    batch = graft.processor(make_clips([1.3, 4.0, 2.2]))
    reference_ids = batch["input_ids"].clone()
    reference_ids[batch["audio_mask"]] = reference.config.audio_token_id
    feature_attention_mask = (torch.arange(3000)[None, :] < batch["feature_lengths"][:, None]).long()
    reference_inputs = dict(
        input_ids=reference_ids,
        attention_mask=batch["attention_mask"],
        input_features=batch["input_features"],
        feature_attention_mask=feature_attention_mask,
    )

    with torch.no_grad():
        expected = reference(**reference_inputs).logits
        actual = graft(**batch).logits
    real = batch["attention_mask"].bool()
    max_diff = (expected[real] - actual[real]).abs().max().item()
    print(f"parity max abs logit diff: {max_diff:.2e}")
    assert max_diff <= 1e-4

    expected_tokens = reference.generate(**reference_inputs, max_new_tokens=8, do_sample=False,
                                         eos_token_id=graft.processor.stop_token_ids,
                                         pad_token_id=graft.processor.pad_id)
    actual_tokens = graft.generate(**batch, max_new_tokens=8)
    assert torch.equal(expected_tokens[:, reference_ids.shape[1]:], actual_tokens)
