"""Projectors: encoder frames -> LLM token embeddings, optionally merging `downsample` frames into one.

All projectors take (batch, frames, d_audio) plus the valid frame count of each clip and return
(batch, tokens, d_llm) plus the token count of each clip. Frames past a clip's end never leak into its
tokens, so a clip gives the same tokens alone or in a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from audiograft.modeling.config import GraftConfig


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


def token_lengths(frame_lengths: torch.Tensor, config: GraftConfig) -> torch.Tensor:
    """Tokens the configured projector makes of clips `frame_lengths` encoder frames long."""
    return frame_lengths if config.projector == "linear" else _grouped_lengths(frame_lengths, config.downsample)


def build_projector(config: GraftConfig, d_audio: int, d_llm: int) -> nn.Module:
    if config.projector == "linear":
        return LinearProjector(d_audio, d_llm, bias=config.projector_bias)
    if config.projector == "pool":
        return PoolProjector(d_audio, d_llm, config.downsample, bias=config.projector_bias)
    return StackProjector(
        d_audio, d_llm, config.downsample, hidden_size=config.projector_hidden_size, bias=config.projector_bias
    )
