"""DETR's transformer as MaskFormer uses it (inference only: dropout is the identity).

Positional encodings are added to queries and keys at every attention (not to values); the
decoder's `norm` is applied to the output of every layer (`return_intermediate`); the encoder has
a final norm only with pre-norm. Module names follow the official `transformer.py` (attention is
`nn.MultiheadAttention`, sequence-first, called like the official code so that it takes the same
code path), so state dicts load unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sine_position_encoding(x: Tensor, num_pos_feats: int, temperature: float = 10000.0) -> Tensor:
    """DETR's normalised `PositionEmbeddingSine` for an unpadded (B, C, H, W) map: (B, 2F, H, W).

    Computed in float32 whatever x's dtype (the official layer builds it in float32); the caller's
    addition promotes it.
    """
    b, _, h, w = x.shape
    ones = torch.ones(b, h, w, dtype=torch.float32, device=x.device)
    y_embed, x_embed = ones.cumsum(1), ones.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
    pos_x, pos_y = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.pre_norm = pre_norm

    def forward(self, src: Tensor, pos: Tensor | None) -> Tensor:
        if self.pre_norm:
            src2 = self.norm1(src)
            q = k = _with_pos(src2, pos)
            src = src + self.self_attn(q, k, value=src2)[0]
            return src + self.linear2(F.relu(self.linear1(self.norm2(src))))
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.self_attn(q, k, value=src)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, pre_norm: bool):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.pre_norm = pre_norm

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor | None, query_pos: Tensor) -> Tensor:
        if self.pre_norm:
            tgt2 = self.norm1(tgt)
            q = k = _with_pos(tgt2, query_pos)
            tgt = tgt + self.self_attn(q, k, value=tgt2)[0]
            tgt2 = self.norm2(tgt)
            tgt = tgt + self.multihead_attn(_with_pos(tgt2, query_pos), _with_pos(memory, pos), value=memory)[0]
            return tgt + self.linear2(F.relu(self.linear1(self.norm3(tgt))))
        q = k = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        tgt2 = self.multihead_attn(_with_pos(tgt, query_pos), _with_pos(memory, pos), value=memory)[0]
        tgt = self.norm2(tgt + tgt2)
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Encoder(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_layers: int, pre_norm: bool):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward, pre_norm) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if pre_norm else None

    def forward(self, src: Tensor, pos: Tensor | None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src if self.norm is None else self.norm(src)


class Decoder(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_layers: int, pre_norm: bool):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(d_model, nhead, dim_feedforward, pre_norm) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor | None, query_pos: Tensor) -> Tensor:
        """The normalised output of the last layer (what inference reads of the intermediate stack)."""
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        return self.norm(tgt)


class Transformer(nn.Module):
    """Encoder (`enc_layers`, 0 in MaskFormer's predictor) + decoder on a (B, C, H, W) map."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, enc_layers: int, dec_layers: int,
                 pre_norm: bool):
        super().__init__()
        self.encoder = Encoder(d_model, nhead, dim_feedforward, enc_layers, pre_norm)
        self.decoder = Decoder(d_model, nhead, dim_feedforward, dec_layers, pre_norm)

    def forward(self, src: Tensor, query_embed: Tensor, pos: Tensor) -> Tensor:
        """(B, Q, C): the decoder's last normalised output."""
        b = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        query_embed = query_embed.unsqueeze(1).repeat(1, b, 1)
        memory = self.encoder(src, pos)
        return self.decoder(torch.zeros_like(query_embed), memory, pos, query_embed).transpose(0, 1)
