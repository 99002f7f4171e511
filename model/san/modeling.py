"""SAN (Side Adapter Network, CVPR 2023) in plain PyTorch on an open_clip CLIP.

    image (B, 3, H, W): normalised, zero-padded to a multiple of 32
      -> resized by `clip_scale` (0.5 B, 0.7 L) -> CLIP blocks 0 .. s-1 (s = 9 B, 18 L);
         the outputs of layers `fusion_clip_layers` (0 = after ln_pre) are kept
      -> side adapter on the full-size image, fed those CLIP maps
         -> mask logits (B, 100, H/16, W/16) and attention biases (B, heads, 100, H/16, W/16)
      -> recognition: 100 copies of CLIP's class token at layer s run CLIP blocks s .. end beside
         the image tokens; each copy attends to the patches through its own bias map (max-pooled
         to the CLIP grid), to itself, and to nothing else (-100); ln_post, projection, L2 norm
      -> mask class logits (B, 100, T + 1) = logit_scale * cos(mask embedding, class text
         embeddings + a learned background embedding)

Semantic scores (T, H, W) = sum over proposals of softmax(class logits)[:T] x sigmoid(mask);
`model.san.inference` composes them at the original image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import build_clip, causal_text_mask, resized_position_table, template_class_embeddings
from model.san.config import SANConfig
from model.san.side_adapter import SideAdapter


class SAN(nn.Module):
    def __init__(self, config: SANConfig):
        super().__init__()
        self.config = config
        self.clip = build_clip(config)
        self.bg_embed = nn.Parameter(torch.empty(1, config.embed_dim))
        nn.init.normal_(self.bg_embed, std=config.embed_dim**-0.5)
        self.side_adapter = SideAdapter(config)
        self.checkpoint_sha256: str | None = None  # set by `create_san` when weights are loaded

    @property
    def device(self) -> torch.device:
        return self.bg_embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bg_embed.dtype

    def reset_buffers(self) -> None:
        """Recompute the non-persistent text mask (needed after building on the meta device)."""
        self.clip.attn_mask = causal_text_mask(self.config.text.context_length).to(self.device)

    # ------------------------------------------------------------------------------------ text
    @torch.no_grad()
    def class_embeddings(self, class_names: list[str]) -> Tensor:
        """(T, C) text embeddings: per template L2-normalised, averaged over the templates,
        normalised again. Names are used verbatim (the official labelset strips whitespace only)."""
        return template_class_embeddings(self.clip, class_names, self.config.templates, self.config.text.context_length)

    @torch.no_grad()
    def classifier(self, class_embeds: Tensor) -> Tensor:
        """(T + 1, C): the class embeddings and the background embedding, L2-normalised, times
        the CLIP logit scale."""
        weights = F.normalize(torch.cat([class_embeds.to(self.bg_embed), self.bg_embed]), dim=-1)
        return self.clip.logit_scale.exp() * weights

    # ---------------------------------------------------------------------------------- vision
    def _clip_layers(self, images: Tensor) -> tuple[dict[int, Tensor], Tensor]:
        """CLIP blocks before recognition: the fusion layers' maps {layer: (B, D, gh, gw)} and
        the tokens (B, 1 + gh*gw, D) entering the first recognition block."""
        visual = self.clip.visual
        x = visual.conv1(images)
        batch, width, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.to(x.dtype).expand(batch, 1, width), x], dim=1)
        # The official code resizes when the grid differs from the stored one; a grid of the same
        # token count but another shape cannot occur here (20 or more patches a side; 14 or 24 stored).
        x = visual.ln_pre(x + resized_position_table(visual.positional_embedding, (gh, gw)).to(x.dtype))
        wanted = set(self.config.fusion_clip_layers)
        maps = {}
        for layer in range(self.config.recognition_start + 1):
            if layer > 0:
                x = visual.transformer.resblocks[layer - 1](x)
            if layer in wanted:
                maps[layer] = x[:, 1:].transpose(1, 2).reshape(batch, width, gh, gw)
        return maps, x

    def _recognition_bias(self, attn_bias: Tensor, grid: tuple[int, int]) -> Tensor:
        """(B, heads, Q, h, w) adapter biases -> (B, heads, Q, 1 + Q + gh*gw) additive mask of the
        proposal tokens' attention over [proposals, class token, patches]: 0 to itself, -100 to the
        other proposals and to the class token, the max-pooled bias map to the patches."""
        batch, heads, queries, h, w = attn_bias.shape
        pooled = F.adaptive_max_pool2d(attn_bias.reshape(batch, heads * queries, h, w), grid)
        pooled = pooled.reshape(batch, heads, queries, grid[0] * grid[1])
        masked = self.config.masked_logit
        to_tokens = torch.full((queries, queries + 1), masked, dtype=pooled.dtype, device=pooled.device)
        to_tokens[:, :queries].fill_diagonal_(0.0)
        return torch.cat([to_tokens.expand(batch, heads, -1, -1), pooled], dim=-1)

    def _recognition_block(self, block: nn.Module, x: Tensor, bias: Tensor, queries: int, last: bool) -> Tensor:
        """One CLIP block over [proposals, class token, patches] with the official additive mask.

        Proposal rows use `bias`; the other rows attend to everything but the proposals (-100).
        In the last block only the proposal rows are computed: nothing reads the others.
        """
        attn = block.attn
        heads = attn.num_heads
        batch, length, width = x.shape
        q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q[:, :, :queries], k, v, attn_mask=bias)
        rows = queries
        if not last:
            others = torch.zeros(1, 1, 1, length, dtype=x.dtype, device=x.device)
            others[..., :queries] = self.config.masked_logit
            out = torch.cat([out, F.scaled_dot_product_attention(q[:, :, queries:], k, v, attn_mask=others)], dim=2)
            rows = length
        out = attn.out_proj(out.transpose(1, 2).reshape(batch, rows, width))
        x = x[:, :rows] + block.ls_1(out)
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    def recognize(self, tokens: Tensor, attn_bias: Tensor, grid: tuple[int, int]) -> Tensor:
        """L2-normalised mask embeddings (B, Q, C) from the tokens entering recognition."""
        queries = attn_bias.shape[2]
        bias = self._recognition_bias(attn_bias, grid)
        x = torch.cat([tokens[:, :1].expand(-1, queries, -1), tokens], dim=1)
        blocks = self.clip.visual.transformer.resblocks[self.config.recognition_start :]
        for index, block in enumerate(blocks):
            x = self._recognition_block(block, x, bias, queries, last=index == len(blocks) - 1)
        visual = self.clip.visual
        return F.normalize(visual.ln_post(x[:, :queries]) @ visual.proj, dim=-1)

    def forward(self, images: Tensor, classifier: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised, padded images (B, 3, H, W) and `classifier` (T + 1, C) ->
        mask class logits (B, Q, T + 1) and mask logits (B, Q, H/16, W/16)."""
        clip_input = F.interpolate(images, scale_factor=self.config.clip_scale, mode="bilinear")
        clip_maps, tokens = self._clip_layers(clip_input)
        masks, attn_bias = self.side_adapter(images, clip_maps)
        grid = tuple(clip_maps[self.config.recognition_start].shape[-2:])
        mask_embeds = self.recognize(tokens, attn_bias, grid)
        return torch.einsum("bqc,nc->bqn", mask_embeds, classifier.to(mask_embeds)), masks
