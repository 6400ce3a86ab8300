import pytest
import torch

from audiograft.modeling.config import GraftConfig
from audiograft.modeling.projectors import (
    QFORMER_QUERIES,
    LinearProjector,
    PoolProjector,
    QFormerProjector,
    StackProjector,
    build_projector,
    token_lengths,
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


@pytest.mark.parametrize("k, clip_frames", [(1, 6), (2, 6), (2, 4), (3, 6)])
def test_qformer_tokens_do_not_depend_on_batch_padding(k, clip_frames):
    # (2, 6): the clip's last window is partly valid; (3, 6): its only window is; (1, 6): it fills two exactly.
    torch.manual_seed(0)
    projector = QFormerProjector(8, 16, k=k).eval()
    frames, lengths = torch.randn(2, 11, 8), torch.tensor([11, clip_frames])
    tokens, token_lengths = projector(frames, lengths)
    alone, alone_lengths = projector(frames[1:, :clip_frames], lengths[1:])
    count = -(-clip_frames // (QFORMER_QUERIES * k)) * QFORMER_QUERIES
    assert token_lengths[1] == alone_lengths[0] == alone.shape[1] == count
    torch.testing.assert_close(tokens[1, :count], alone[0])
    # Frames past the clip's end, however large, change none of its tokens.
    frames[1, clip_frames:] = 1e4
    torch.testing.assert_close(projector(frames, lengths)[0][1, :count], alone[0])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_qformer_shapes_and_token_lengths(k):
    torch.manual_seed(0)
    lengths = torch.tensor([1, 5, 6, 7, 12, 13, 25])
    frames = torch.randn(len(lengths), 25, 8)
    tokens, counts = QFormerProjector(8, 16, k=k)(frames, lengths)
    window = QFORMER_QUERIES * k
    expected = [-(-length // window) * QFORMER_QUERIES for length in lengths.tolist()]
    assert counts.tolist() == expected
    assert tokens.shape == (len(lengths), -(-25 // window) * QFORMER_QUERIES, 16)
    config = GraftConfig(encoder="e", llm="l", projector="qformer", downsample=k)
    assert token_lengths(lengths, config).tolist() == expected


def test_qformer_partial_window_attends_to_its_valid_frames_only():
    torch.manual_seed(0)
    projector = QFormerProjector(8, 16, k=2).eval()
    frames, lengths = torch.randn(1, 6, 8), torch.tensor([4])
    tokens, _ = projector(frames, lengths)
    memory = projector.frame_norm(frames[:, :4]) + projector.window_positions[:4]
    expected = projector.linear(projector.norm(projector.decoder(projector.queries[None], memory)))
    torch.testing.assert_close(tokens, expected)


def test_qformer_gives_no_nan_for_windows_past_a_clip_end():
    torch.manual_seed(0)
    frames, lengths = torch.randn(3, 40, 8), torch.tensor([40, 13, 1])
    tokens, _ = QFormerProjector(8, 16, k=4)(frames, lengths)
    assert torch.isfinite(tokens).all()


def test_qformer_window_queries_see_only_their_own_window():
    torch.manual_seed(0)
    projector = QFormerProjector(8, 16, k=2).eval()
    frames, lengths = torch.randn(1, 12, 8), torch.tensor([12])
    tokens, _ = projector(frames, lengths)
    changed = frames.clone()
    changed[0, 6:] = torch.randn(6, 8)
    changed_tokens, _ = projector(changed, lengths)
    torch.testing.assert_close(changed_tokens[0, :QFORMER_QUERIES], tokens[0, :QFORMER_QUERIES])
    assert not torch.allclose(changed_tokens[0, QFORMER_QUERIES:], tokens[0, QFORMER_QUERIES:])


def test_qformer_gradients_reach_the_queries_and_positions():
    frames, lengths = frames_and_lengths()
    projector = QFormerProjector(8, 16, k=2)
    tokens, counts = projector(frames, lengths)
    valid = torch.arange(tokens.shape[1])[None, :] < counts[:, None]
    tokens[valid].square().sum().backward()
    assert projector.queries.grad is not None and projector.queries.grad.abs().sum() > 0
    assert projector.window_positions.grad is not None and projector.window_positions.grad.abs().sum() > 0


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


def test_build_qformer_follows_config():
    config = GraftConfig(encoder="e", llm="l", projector="qformer", downsample=2, projector_bias=False,
                         projector_hidden_size=24)
    projector = build_projector(config, 8, 16)
    assert isinstance(projector, QFormerProjector) and projector.window == 2 * QFORMER_QUERIES
    assert projector.linear.bias is None
    assert all(layer.linear1.out_features == 24 for layer in projector.decoder.layers)


@pytest.mark.parametrize("d_audio, heads", [(512, 8), (1280, 8), (12, 6), (7, 7), (10, 5)])
def test_qformer_heads_divide_the_audio_width(d_audio, heads):
    projector = QFormerProjector(d_audio, 4, k=1)
    assert all(layer.self_attn.num_heads == heads for layer in projector.decoder.layers)
