"""MaskFormer's transformer predictor: 100 learned queries decode the coarsest feature map; each
query gives a mask embedding (dot product with the pixel decoder's mask features = mask logits)
and, by `PredictorConfig.class_head`, class logits, a class embedding, or nothing.

Module names are the official `TransformerPredictor`'s (`query_embed`, `input_proj`,
`transformer.decoder.*`, `class_embed`, `mask_embed.layers.*`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.maskformer.config import PredictorConfig
from model.maskformer.layers import MLP, Conv2d
from model.maskformer.transformer import Transformer, sine_position_encoding


class TransformerPredictor(nn.Module):
    def __init__(self, config: PredictorConfig, in_channels: int, mask_dim: int):
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.transformer = Transformer(d, config.nheads, config.dim_feedforward, config.enc_layers,
                                       config.dec_layers, config.pre_norm)
        self.query_embed = nn.Embedding(config.num_queries, d)
        self.input_proj = (Conv2d(in_channels, d, kernel_size=1) if in_channels != d or config.enforce_input_proj
                           else nn.Identity())
        if config.class_head == "linear":
            self.class_embed = nn.Linear(d, config.class_out)
        elif config.class_head == "mlp":
            self.class_embed = MLP(d, config.class_hidden_dim, config.class_out, config.class_layers)
        elif config.class_head:
            raise ValueError(f"unknown class_head '{config.class_head}' (known: linear, mlp, '')")
        self.mask_embed = MLP(d, d, mask_dim, config.mask_embed_layers)

    def decode(self, x: Tensor) -> Tensor:
        """(B, Q, hidden): the decoder's last normalised query states."""
        pos = sine_position_encoding(x, self.config.hidden_dim // 2)
        return self.transformer(self.input_proj(x), self.query_embed.weight, pos)

    def forward(self, x: Tensor, mask_features: Tensor) -> tuple[Tensor | None, Tensor]:
        """(class output (B, Q, class_out) or None, mask logits (B, Q, H, W) at the mask features' size)."""
        hs = self.decode(x)
        classes = self.class_embed(hs) if self.config.class_head else None
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(hs), mask_features)
        return classes, masks
