import pytest
import torch

from audiograft.modeling.config import GraftConfig
from audiograft.modeling.projectors import (
    LinearProjector,
    PoolProjector,
    StackProjector,
    build_projector,
)


def frames_and_lengths():
    torch.manual_seed(0)
    return torch.randn(2, 11, 8), torch.tensor([11, 6])


def test_linear_keeps_one_token_per_frame():
    frames, lengths = frames_and_lengths()
    tokens, token_lengths = LinearProjector(8, 16, bias=False)(frames, lengths)
    assert tokens.shape == (2, 11, 16) and token_lengths.tolist() == [11, 6]


def test_pool_averages_groups_and_the_partial_last_group_over_its_real_frames():
    frames, lengths = frames_and_lengths()
    projector = PoolProjector(8, 16, k=4)
    tokens, token_lengths = projector(frames, lengths)
    assert tokens.shape == (2, 3, 16) and token_lengths.tolist() == [3, 2]
    expected_partial = projector.linear(frames[1, 4:6].mean(0))
    torch.testing.assert_close(tokens[1, 1], expected_partial)
    torch.testing.assert_close(tokens[0, 2], projector.linear(frames[0, 8:11].mean(0)))


@pytest.mark.parametrize("projector", [PoolProjector(8, 16, k=3), StackProjector(8, 16, k=3)])
def test_tokens_do_not_depend_on_batch_padding(projector):
    frames, lengths = frames_and_lengths()
    tokens, token_lengths = projector(frames, lengths)
    alone, alone_lengths = projector(frames[1:, :6], lengths[1:])
    assert token_lengths[1] == alone_lengths[0] == 2
    torch.testing.assert_close(tokens[1, :2], alone[0, :2])


def test_stack_shapes_and_validation():
    frames, lengths = frames_and_lengths()
    tokens, token_lengths = StackProjector(8, 16, k=2, hidden_size=12)(frames, lengths)
    assert tokens.shape == (2, 6, 16) and token_lengths.tolist() == [6, 3]
    with pytest.raises(ValueError, match="even"):
        StackProjector(8, 16, k=2, hidden_size=11)


@pytest.mark.parametrize("kind, cls", [("linear", LinearProjector), ("pool", PoolProjector), ("stack", StackProjector)])
def test_build_projector_follows_config(kind, cls):
    config = GraftConfig(encoder="e", llm="l", projector=kind, downsample=1 if kind == "linear" else 2,
                         projector_bias=False)
    projector = build_projector(config, 8, 16)
    assert isinstance(projector, cls)
    assert all("bias" not in name for name, _ in projector.named_parameters())
