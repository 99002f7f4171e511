"""Cost aggregation: the cosine cost volume, spatial (Swin) and class (linear attention) blocks.

Shapes: B images (windows), T classes, h x w patch grid (24 x 24), E = hidden width (128).
The cost embedding is kept as (B, E, T, h, w) between blocks. Module and parameter names follow
the official `Aggregator` (its `conv1` is our `cost_embed`; its decoder is `model.decoder`), so
checkpoint conversion is a prefix table (`model.checkpoint.OFFICIAL_TO_OURS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.configs import CATSegConfig


def cost_volume(img_feats: Tensor, text: Tensor) -> Tensor:
    """Cosine similarity of every patch with every class, (B, C, h, w) x (B, T, C) -> (B, T, h, w).

    No temperature and no logit scale: values lie in [-1, 1]. Computed in float32 even under
    autocast: CLIP cosines of different classes differ by about 1e-2, close to bf16's resolution.
    """
    with torch.autocast(img_feats.device.type, enabled=False):
        img_feats = F.normalize(img_feats.float(), dim=1)
        text = F.normalize(text.float(), dim=-1)
        return torch.einsum("bchw,btc->bthw", img_feats, text)


def select_top_classes(corr: Tensor, k: int) -> Tensor:
    """Per window, the k classes whose best patch similarity is highest: (B, T, h, w) -> (B, k).

    The order of the selection is unspecified (like `topk(sorted=False)`); the class blocks are
    permutation-equivariant, so it does not matter.
    """
    return corr.flatten(2).amax(dim=-1).topk(k, dim=-1, sorted=False).indices


def window_partition(x: Tensor, window: int) -> Tensor:
    """(N, H, W, C) -> (N * H/window * W/window, window * window, C), windows in raster order."""
    n, h, w, c = x.shape
    x = x.view(n, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of `window_partition`: (N * nW, window * window, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def shifted_window_mask(size: int, window: int, shift: int) -> Tensor:
    """The standard Swin mask (nW, window^2, window^2): 0 within a region, -100 across regions."""
    regions = torch.zeros(1, size, size, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[:, rows, cols, :] = label
            label += 1
    labels = window_partition(regions, window).squeeze(-1)
    mask = labels.unsqueeze(1) - labels.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0)


class Mlp(nn.Module):
    """timm-style MLP (fc1, exact GELU, fc2)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def split_linear(layer: nn.Linear, width: int, x: Tensor, guidance: Tensor) -> Tensor:
    """`layer(cat([x, guidance], -1))` computed as two products, x part + (guidance part + bias).

    The guidance is shared by many rows of x (every class at a position, or every position of a
    class), so its product is computed once and broadcast instead of concatenated everywhere.
    """
    return F.linear(x, layer.weight[:, :width]) + F.linear(guidance, layer.weight[:, width:], layer.bias)


class GuidedWindowAttention(nn.Module):
    """Window self-attention whose queries and keys also see the image guidance.

    q and k are projected from [x || guidance], v from x alone; no relative position bias.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, guidance: Tensor, mask: Tensor | None) -> Tensor:
        """x: (B, T, nW, L, dim) normalised windows of every class map; guidance: (B, 1, nW, L, G),
        shared by the T classes; mask: (nW, L, L) or None."""
        q = split_linear(self.q, self.dim, x, guidance) * self.scale
        k = split_linear(self.k, self.dim, x, guidance)
        v = self.v(x)

        def heads(t: Tensor) -> Tensor:  # (..., L, dim) -> (..., heads, L, d)
            return t.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

        attn = heads(q) @ heads(k).transpose(-2, -1)
        if mask is not None:
            attn = attn + mask[:, None]
        out = attn.softmax(dim=-1) @ heads(v)
        return self.proj(out.transpose(-3, -2).flatten(-2))


class SwinBlock(nn.Module):
    """Pre-norm Swin block over each class's cost map, with guidance in the q/k inputs."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, size: int, window: int, shift: int):
        super().__init__()
        self.size, self.window, self.shift = size, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        # Computed, never learned. The official model keeps it in its state dict (persistent);
        # the checkpoint loader checks the stored copy against this one instead of loading it.
        mask = shifted_window_mask(size, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def _windows(self, x: Tensor) -> Tensor:
        """(N, size, size, C) -> (N, nW, window^2, C), after the cyclic shift."""
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.window)
        return windows.view(x.shape[0], -1, *windows.shape[1:])

    def forward(self, x: Tensor, guidance: Tensor) -> Tensor:
        """x: (B, T, size*size, dim); guidance: (B, size*size, G), already normalised."""
        b, t, _, dim = x.shape
        s = self.size
        y = self._windows(self.norm1(x).view(b * t, s, s, dim))
        g = self._windows(guidance.view(b, s, s, -1))
        y = self.attn(y.view(b, t, *y.shape[1:]), g.unsqueeze(1), self.attn_mask)
        y = window_reverse(y.flatten(0, 2), self.window, s, s)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.view(b, t, s * s, dim)
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Two Swin blocks (plain, then shifted) applied to each class's (h, w) cost map separately."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, size: int, window: int):
        super().__init__()
        self.block_1 = SwinBlock(dim, guidance_dim, num_heads, size, window, shift=0)
        self.block_2 = SwinBlock(dim, guidance_dim, num_heads, size, window, shift=window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim)

    def forward(self, x: Tensor, guidance: Tensor) -> Tensor:
        """x: (B, E, T, h, w); guidance: (B, G, h, w) -> (B, E, T, h, w)."""
        b, e, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, e)
        guidance = self.guidance_norm(guidance.permute(0, 2, 3, 1).reshape(b, h * w, -1))
        x = self.block_2(self.block_1(x, guidance), guidance)
        return x.reshape(b, t, h, w, e).permute(0, 4, 1, 2, 3)


def _elu1(x: Tensor) -> Tensor:
    return F.elu(x) + 1


def linear_attention(q: Tensor, k: Tensor, v: Tensor, length: int, pad: tuple[Tensor, Tensor, int] | None = None,
                     eps: float = 1e-6) -> Tensor:
    """Linear attention ("Transformers are RNNs", elu+1 feature map) over the class axis.

    q, k, v: (..., S, heads, d) for the S real classes. `pad` = (k_pad, v_pad, count) adds
    `count` identical padding tokens (k_pad, v_pad: (heads, d)) to the keys and values: their
    queries are never needed, so their share of the sums is added in closed form. `length` is
    the full sequence length (real + padding); v is divided by it before the key-value product
    and the result multiplied back, as in the official fp16 guard. Runs in float32 under
    autocast: the normaliser is a sum over up to 256 classes.
    """
    with torch.autocast(q.device.type, enabled=False):
        return _linear_attention_fp32(q.float(), k.float(), v.float(), length, pad, eps)


def _linear_attention_fp32(q: Tensor, k: Tensor, v: Tensor, length: int, pad: tuple[Tensor, Tensor, int] | None,
                           eps: float) -> Tensor:
    q, k = _elu1(q), _elu1(k)
    kv = torch.einsum("...shd,...shv->...hdv", k, v / length)
    k_sum = k.sum(dim=-3)
    if pad is not None:
        k_pad, v_pad, count = pad
        k_pad, v_pad = _elu1(k_pad.float()), v_pad.float()
        kv = kv + count * torch.einsum("hd,hv->hdv", k_pad, v_pad / length)
        k_sum = k_sum + count * k_pad
    z = 1 / (torch.einsum("...lhd,...hd->...lh", q, k_sum) + eps)
    return torch.einsum("...lhd,...hdv,...lh->...lhv", q, kv, z) * length


class GuidedLinearAttention(nn.Module):
    """Attention over the class axis: q, k from [x || text guidance], v from x; no output projection."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, x: Tensor, guidance: Tensor, length: int, pad: tuple[Tensor, Tensor, int] | None) -> Tensor:
        """x: (B, P, T, dim) normalised class tokens at P positions; guidance: (B, 1, T, G);
        pad: (x_pad (dim,) normalised, guidance_pad (G,), count) or None -> (B, P, T, dim)."""

        def heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.num_heads, -1))

        q = split_linear(self.q, self.dim, x, guidance)
        k = split_linear(self.k, self.dim, x, guidance)
        v = self.v(x)
        pad_kv = None
        if pad is not None:
            x_pad, guidance_pad, count = pad
            pad_kv = (heads(split_linear(self.k, self.dim, x_pad, guidance_pad)), heads(self.v(x_pad)), count)
        return linear_attention(heads(q), heads(k), heads(v), length, pad_kv).flatten(-2)


class ClassAggregation(nn.Module):
    """Transformer block over the class axis at every (pooled) position.

    The class axis is padded to `pad_len` with a learned token (and learned guidance), so the block
    always sees the same sequence length; only the real classes' outputs are computed (see
    `linear_attention`). The output follows the official residual exactly:
    x + up(pool(x) + delta), i.e. 2x + delta at evaluation where pooling is 1.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, pad_len: int):
        super().__init__()
        self.pad_len = pad_len
        self.attention = GuidedLinearAttention(dim, guidance_dim, num_heads)
        self.MLP = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.padding_guidance = nn.Parameter(torch.zeros(1, 1, guidance_dim))

    def forward(self, x: Tensor, guidance: Tensor, pool_size: int) -> Tensor:
        """x: (B, E, T, h, w); guidance: (B, T, G) -> (B, E, T, h, w)."""
        b, e, t, h, w = x.shape
        pooled = x.reshape(b, e * t, h, w)
        if pool_size > 1:
            pooled = F.avg_pool2d(pooled, pool_size)
        hp, wp = pooled.shape[-2:]
        seq = pooled.reshape(b, e, t, hp * wp).permute(0, 3, 2, 1)
        pad = None
        if t < self.pad_len:
            pad = (self.norm1(self.padding_tokens[0, 0]), self.padding_guidance[0, 0], self.pad_len - t)
        length = max(t, self.pad_len)
        seq = seq + self.attention(self.norm1(seq), guidance.unsqueeze(1), length, pad)
        seq = seq + self.MLP(self.norm2(seq))
        pooled = seq.permute(0, 3, 2, 1).reshape(b, e, t, hp, wp)
        if (hp, wp) != (h, w):
            pooled = F.interpolate(pooled.reshape(b, e * t, hp, wp), size=(h, w), mode="bilinear", align_corners=True)
            pooled = pooled.reshape(b, e, t, h, w)
        return x + pooled


class AggregatorLayer(nn.Module):
    def __init__(self, config: CATSegConfig):
        super().__init__()
        c = config
        self.swin_block = SpatialAggregation(
            c.hidden_dim, c.appearance_guidance_proj_dim, c.num_heads, c.feature_size, c.window_size
        )
        self.attention = ClassAggregation(c.hidden_dim, c.text_guidance_proj_dim, c.num_heads, c.pad_len)

    def forward(self, x: Tensor, appearance_guidance: Tensor, text_guidance: Tensor, pool_size: int) -> Tensor:
        return self.attention(self.swin_block(x, appearance_guidance), text_guidance, pool_size)


class Aggregator(nn.Module):
    """Cost volume -> cost embedding -> `num_layers` x (spatial block, class block)."""

    def __init__(self, config: CATSegConfig):
        super().__init__()
        c = config
        self.pad_len = c.pad_len
        self.cost_embed = nn.Conv2d(1, c.hidden_dim, c.cost_embed_kernel, padding=c.cost_embed_kernel // 2)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(c.embed_dim, c.appearance_guidance_proj_dim, 3, padding=1), nn.ReLU()
        )
        self.text_guidance_projection = nn.Sequential(nn.Linear(c.embed_dim, c.text_guidance_proj_dim), nn.ReLU())
        self.layers = nn.ModuleList(AggregatorLayer(c) for _ in range(c.num_layers))

    def forward(self, img_feats: Tensor, text: Tensor, pool_size: int) -> tuple[Tensor, Tensor | None]:
        """img_feats: (B, C, h, w) dense CLIP features; text: (B, T, C) class embeddings.

        Returns the aggregated cost embedding (B, E, T', h, w) and, when T > pad_len, the indices
        (B, T') of the T' = pad_len classes kept per window (None otherwise).
        """
        corr = cost_volume(img_feats, text)
        selected = None
        if text.shape[1] > self.pad_len:
            selected = select_top_classes(corr, self.pad_len)
            corr = torch.gather(corr, 1, selected[:, :, None, None].expand(-1, -1, *corr.shape[2:]))
            text = torch.gather(text, 1, selected[:, :, None].expand(-1, -1, text.shape[-1]))
        b, t, h, w = corr.shape
        x = self.cost_embed(corr.reshape(b * t, 1, h, w))
        x = x.reshape(b, t, -1, h, w).transpose(1, 2)
        appearance_guidance = self.guidance_projection(img_feats)
        text_guidance = self.text_guidance_projection(F.normalize(text, dim=-1))
        for layer in self.layers:
            x = layer(x, appearance_guidance, text_guidance, pool_size)
        return x, selected
