"""Projectors: encoder frames -> LLM token embeddings, optionally merging `downsample` frames into one.

linear: one token per frame. pool: the mean of `downsample` frames. stack: `downsample` frames stacked into an MLP.
qformer: QFORMER_QUERIES learned queries attend to each window of QFORMER_QUERIES * downsample frames.

All projectors take (batch, frames, d_audio) plus the valid frame count of each clip and return
(batch, tokens, d_llm) plus the token count of each clip. Frames past a clip's end never leak into its
tokens, so a clip gives the same tokens alone or in a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from audiograft.modeling.config import GraftConfig

QFORMER_QUERIES = 3  # Granite-Speech's ratio: 3 queries per 3*downsample frames, one token per `downsample` frames
QFORMER_LAYERS = 2
QFORMER_MAX_HEADS = 8


def _group_frames(frames: torch.Tensor, lengths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the padded frames and fold every k consecutive frames: (B, T, D) -> (B, ceil(T/k), k, D), valid mask."""
    batch, time, dim = frames.shape
    groups = -(-time // k)
    valid = torch.arange(groups * k, device=frames.device)[None, :] < lengths[:, None]
    frames = nn.functional.pad(frames, (0, 0, 0, groups * k - time)) * valid[..., None].to(frames.dtype)
    return frames.view(batch, groups, k, dim), valid.view(batch, groups, k)


def _grouped_lengths(lengths: torch.Tensor, k: int) -> torch.Tensor:
    return -(-lengths // k)


class LinearProjector(nn.Module):
    """One token per frame (the seed's projector)."""

    def __init__(self, d_audio: int, d_llm: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(d_audio, d_llm, bias=bias)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear(frames), lengths


class PoolProjector(nn.Module):
    """Average k frames, then a linear map (Qwen2-Audio pools k=2: 25 tokens/s)."""

    def __init__(self, d_audio: int, d_llm: int, k: int, bias: bool = True):
        super().__init__()
        self.k = k
        self.linear = nn.Linear(d_audio, d_llm, bias=bias)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grouped, valid = _group_frames(frames, lengths, self.k)
        # The last group of a clip may be partial: divide by the frames it really has.
        counts = valid.sum(-1, keepdim=True).clamp(min=1).to(grouped.dtype)
        return self.linear(grouped.sum(2) / counts), _grouped_lengths(lengths, self.k)


class SwiGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = x.chunk(2, dim=-1)
        return nn.functional.silu(gate) * value


class StackProjector(nn.Module):
    """Stack k frames -> RMSNorm -> Linear -> SwiGLU -> Linear (Ultravox / SLAM-LLM style)."""

    def __init__(self, d_audio: int, d_llm: int, k: int, hidden_size: int | None = None, bias: bool = False):
        super().__init__()
        self.k = k
        hidden_size = hidden_size or 2 * d_llm
        if hidden_size % 2:
            raise ValueError(f"stack projector hidden size must be even for SwiGLU, got {hidden_size}")
        self.norm = nn.RMSNorm(k * d_audio)
        self.linear_in = nn.Linear(k * d_audio, hidden_size, bias=bias)
        self.activation = SwiGLU()
        self.linear_out = nn.Linear(hidden_size // 2, d_llm, bias=bias)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grouped, _ = _group_frames(frames, lengths, self.k)
        stacked = grouped.flatten(2)
        tokens = self.linear_out(self.activation(self.linear_in(self.norm(stacked))))
        return tokens, _grouped_lengths(lengths, self.k)


def _attention_heads(d_model: int) -> int:
    """The most heads, up to QFORMER_MAX_HEADS, that divide d_model (8 heads of 64 for whisper-base's 512)."""
    return next(heads for heads in range(min(QFORMER_MAX_HEADS, d_model), 0, -1) if d_model % heads == 0)


def _qformer_lengths(lengths: torch.Tensor, downsample: int) -> torch.Tensor:
    """Every window holding at least one of the clip's frames gives all its queries' outputs."""
    return _grouped_lengths(lengths, QFORMER_QUERIES * downsample) * QFORMER_QUERIES


class QFormerProjector(nn.Module):
    """Windowed Q-Former (Granite-Speech, SALMONN): QFORMER_QUERIES learned queries per window of
    QFORMER_QUERIES * k frames, through pre-norm transformer decoder layers, then a norm and a linear map.

    Each window is a separate attention problem, so queries never see frames of another window, and frames past
    the clip's end are masked out of the cross-attention. `hidden_size` is the decoder layers' feed-forward width
    (default 4 * d_audio); `bias` applies to the final linear map.
    """

    def __init__(self, d_audio: int, d_llm: int, k: int, hidden_size: int | None = None, bias: bool = True):
        super().__init__()
        self.k = k
        self.window = QFORMER_QUERIES * k
        # Queries at the scale of the normed frames, as Granite-Speech initialises them.
        self.queries = nn.Parameter(torch.randn(QFORMER_QUERIES, d_audio))
        self.window_positions = nn.Parameter(0.02 * torch.randn(self.window, d_audio))
        # Cross-attention reads the frames un-normed (norm_first normalises only the queries): norm them once here.
        self.frame_norm = nn.LayerNorm(d_audio)
        layer = nn.TransformerDecoderLayer(
            d_audio,
            nhead=_attention_heads(d_audio),
            dim_feedforward=hidden_size or 4 * d_audio,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers=QFORMER_LAYERS)
        self.norm = nn.LayerNorm(d_audio)
        self.linear = nn.Linear(d_audio, d_llm, bias=bias)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = frames.shape[0]
        grouped, valid = _group_frames(frames, lengths, self.window)
        windows = grouped.shape[1]
        memory = self.frame_norm(grouped.flatten(0, 1)) + self.window_positions
        valid = valid.flatten(0, 1)
        # A window wholly past the clip's end would mask every key and turn softmax into NaN: leave it unmasked;
        # its tokens fall past the clip's token length and are dropped.
        padding = ~valid & valid.any(-1, keepdim=True)
        queries = self.queries.expand(batch * windows, -1, -1)
        attended = self.decoder(queries, memory, memory_key_padding_mask=padding)
        tokens = self.linear(self.norm(attended)).view(batch, windows * QFORMER_QUERIES, -1)
        return tokens, _qformer_lengths(lengths, self.k)


def token_lengths(frame_lengths: torch.Tensor, config: GraftConfig) -> torch.Tensor:
    """Tokens the configured projector makes of clips `frame_lengths` encoder frames long."""
    if config.projector == "linear":
        return frame_lengths
    if config.projector == "qformer":
        return _qformer_lengths(frame_lengths, config.downsample)
    return _grouped_lengths(frame_lengths, config.downsample)


def build_projector(config: GraftConfig, d_audio: int, d_llm: int) -> nn.Module:
    if config.projector == "linear":
        return LinearProjector(d_audio, d_llm, bias=config.projector_bias)
    if config.projector == "pool":
        return PoolProjector(d_audio, d_llm, config.downsample, bias=config.projector_bias)
    if config.projector == "qformer":
        return QFormerProjector(
            d_audio, d_llm, config.downsample, hidden_size=config.projector_hidden_size, bias=config.projector_bias
        )
    return StackProjector(
        d_audio, d_llm, config.downsample, hidden_size=config.projector_hidden_size, bias=config.projector_bias
    )
