"""Cost aggregation: the cosine cost volume, spatial (Swin) and class (linear attention) blocks.

Shapes: B images (windows), T classes, h x w patch grid (24 x 24), E = hidden width (128).
The cost embedding is seen as (B, E, T, h, w) between blocks and stored channels-last,
(B, T, h, w, E) in memory: the layout every per-token linear layer wants, so the blocks pass it
on without layout copies. Module and parameter names follow
the official `Aggregator` (its `conv1` is our `cost_embed`; its decoder is `model.decoder`), so
checkpoint conversion is a prefix table (`model.checkpoint.OFFICIAL_TO_OURS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.chunks import items_per_chunk, run_chunked
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


def shifted_window_mask(size: int | tuple[int, int], window: int, shift: int) -> Tensor:
    """The standard Swin mask (nW, window^2, window^2) of a square `size` or an (h, w) map (float32):
    0 within a region, -100 across regions."""
    h, w = (size, size) if isinstance(size, int) else size
    regions = torch.zeros(1, h, w, 1)
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
    return F.linear(x, layer.weight[:, :width]).add_(F.linear(guidance, layer.weight[:, width:], layer.bias))


def window_token_order(size: int, window: int, shift: int) -> Tensor:
    """(size * size,) raster index of the token at each place of the windowed layout.

    `x.index_select(dim, order)` on raster-ordered tokens gives them cyclically shifted by
    -shift and cut into windows (windows in raster order, tokens in raster order inside each):
    `torch.roll` and `window_partition` in one gather.
    """
    grid = torch.arange(size * size).view(1, size, size, 1)
    if shift:
        grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
    return window_partition(grid, window).flatten()


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

    def _qkv(self, x: Tensor, guidance: Tensor) -> Tensor:
        """[q | k | v] (..., 3 * dim): one product of x with the three x-weights, plus the q/k
        guidance products (with their biases) and the v bias, computed on the shared guidance."""
        d = self.dim
        x_weight = torch.cat([self.q.weight[:, :d], self.k.weight[:, :d], self.v.weight])
        shared = torch.cat(
            [
                F.linear(guidance, self.q.weight[:, d:], self.q.bias),
                F.linear(guidance, self.k.weight[:, d:], self.k.bias),
                self.v.bias.expand(*guidance.shape[:-1], d),
            ],
            dim=-1,
        )
        return F.linear(x, x_weight).add_(shared)

    def forward(self, x: Tensor, guidance: Tensor, mask: Tensor | None) -> Tensor:
        """x: (B, T, nW, L, dim) normalised windows of every class map; guidance: (B, 1, nW, L, G),
        shared by the T classes; mask: (nW, L, L) additive, or None -> (B, T, nW, L, dim)."""
        b, t, n_windows, length, dim = x.shape
        q, k, v = self._qkv(x, guidance).flatten(0, 1).unflatten(-1, (3, self.num_heads, -1)).unbind(-3)

        def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
            """(N, L, heads, d) each -> (N, L, dim); the kernel wants (N, heads, L, d)."""
            q, k, v = (u.transpose(1, 2) for u in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            return out.transpose(1, 2).flatten(-2)

        if mask is None:
            out = attend(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), None)
        else:  # one call per window: each window has its own mask, shared by all B * T maps
            mask = mask.to(q.dtype)
            out = torch.stack([attend(q[:, w], k[:, w], v[:, w], mask[w]) for w in range(n_windows)], dim=1)
        return self.proj(out.view(b, t, n_windows, length, dim))


class SwinBlock(nn.Module):
    """Pre-norm Swin block over each class's cost map, with guidance in the q/k inputs.

    Works on tokens already in its windowed layout (`token_order`): the block is per-token apart
    from the window attention, so the cyclic shift and the window partition are one gather done by
    the caller, and nothing is rolled back or reassembled in between.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, size: int, window: int, shift: int):
        super().__init__()
        self.size, self.window, self.shift = size, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.reset_buffers()

    def reset_buffers(self, device: torch.device | None = None) -> None:
        """(Re)compute the shift mask and the token order, never learned.

        The official model keeps the mask in its state dict (persistent); the checkpoint loader
        checks the stored copy against this one instead of loading it.
        """
        mask = shifted_window_mask(self.size, self.window, self.shift) if self.shift > 0 else None
        order = window_token_order(self.size, self.window, self.shift)
        self.register_buffer("attn_mask", None if mask is None else mask.to(device), persistent=False)
        self.register_buffer("token_order", order.to(device), persistent=False)

    def forward(self, x: Tensor, guidance: Tensor) -> Tensor:
        """x: (B, T, size*size, dim) in this block's windowed layout; guidance: (B, size*size, G),
        normalised, in the same layout."""
        b, t, n, dim = x.shape
        windows = (-1, self.window * self.window)
        y = self.norm1(x).view(b, t, *windows, dim)
        g = guidance.view(b, 1, *windows, guidance.shape[-1])
        x = x + self.attn(y, g, self.attn_mask).view(b, t, n, dim)
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Two Swin blocks (plain, then shifted) applied to each class's (h, w) cost map separately.

    The cost embedding arrives and leaves channels-last, (B, T, h, w, E) in memory, seen as
    (B, E, T, h, w): the tokens are contiguous rows for the linear layers, and three gathers
    (raster -> block 1 windows -> block 2 windows -> raster) are the only copies. Both blocks are
    local to a map, so `maps_per_chunk` maps of one image at a time go through both (see
    `model.chunks`); None runs all maps at once.
    """

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, size: int, window: int):
        super().__init__()
        self.block_1 = SwinBlock(dim, guidance_dim, num_heads, size, window, shift=0)
        self.block_2 = SwinBlock(dim, guidance_dim, num_heads, size, window, shift=window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim)

    def forward(self, x: Tensor, guidance: Tensor, maps_per_chunk: int | None = None) -> Tensor:
        """x: (B, E, T, h, w); guidance: (B, G, h, w) -> (B, E, T, h, w), channels-last."""
        b, e, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, e)
        guidance = self.guidance_norm(guidance.permute(0, 2, 3, 1).reshape(b, h * w, -1))
        first, second = self.block_1.token_order, self.block_2.token_order
        first_to_second, to_raster = torch.argsort(first)[second], torch.argsort(second)
        guidance_1, guidance_2 = guidance.index_select(1, first), guidance.index_select(1, second)

        def both_blocks(images: slice, classes: slice) -> Tensor:
            y = self.block_1(x[images, classes].index_select(2, first), guidance_1[images])
            y = self.block_2(y.index_select(2, first_to_second), guidance_2[images])
            return y.index_select(2, to_raster)

        out = run_chunked(both_blocks, b, t, maps_per_chunk)
        return out.view(b, t, h, w, e).permute(0, 4, 1, 2, 3)


def _elu1(x: Tensor) -> Tensor:
    """elu(x) + 1, the feature map, as exp(min(x, 0)) + max(x, 0) with min(x, 0) = x - relu(x)
    (exact): equal to `F.elu(x) + 1` within an ulp and, on the CPU, 2-3x faster than its expm1."""
    positive = torch.relu(x)
    return torch.exp(x - positive) + positive


def linear_attention(q: Tensor, k: Tensor, v: Tensor, length: int, pad: tuple[Tensor, Tensor, int] | None = None,
                     eps: float = 1e-6) -> Tensor:
    """Linear attention ("Transformers are RNNs", elu+1 feature map) over the class axis.

    q, k, v: (B, S, P, heads, d): the S real classes at each of P positions (the layout the
    cost embedding is stored in). `pad` = (k_pad, v_pad, count) adds `count` identical padding
    tokens (k_pad, v_pad: (heads, d)) to the keys and values: their queries are never needed, so
    their share of the sums is added in closed form. `length` is the full sequence length (real +
    padding); v is divided by it before the key-value product and the result multiplied back, as
    in the official fp16 guard. Runs in float32 under autocast: the normaliser is a sum over up
    to 256 classes.
    """
    with torch.autocast(q.device.type, enabled=False):
        return _linear_attention_fp32(q.float(), k.float(), v.float(), length, pad, eps)


def _linear_attention_fp32(q: Tensor, k: Tensor, v: Tensor, length: int, pad: tuple[Tensor, Tensor, int] | None,
                           eps: float) -> Tensor:
    q, k = _elu1(q), _elu1(k)
    kv = torch.einsum("bsphd,bsphv->bphdv", k, v / length)
    k_sum = k.sum(dim=1)
    if pad is not None:
        k_pad, v_pad, count = pad
        k_pad, v_pad = _elu1(k_pad.float()), v_pad.float()
        kv = kv + count * torch.einsum("hd,hv->hdv", k_pad, v_pad / length)
        k_sum = k_sum + count * k_pad
    z = 1 / (torch.einsum("bsphd,bphd->bsph", q, k_sum) + eps)
    return torch.einsum("bsphd,bphdv,bsph->bsphv", q, kv, z) * length


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
        """x: (B, T, P, dim) normalised class tokens at P positions; guidance: (B, T, 1, G);
        pad: (x_pad (dim,) normalised, guidance_pad (G,), count) or None -> (B, T, P, dim)."""

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
    x + up(pool(x) + delta), i.e. 2x + delta at evaluation where pooling is 1. Works on the
    channels-last (B, T, h, w, E) memory of the cost embedding without moving it (see
    `SpatialAggregation`); only training-time pooling goes through a channels-first copy.
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

    def forward(self, x: Tensor, guidance: Tensor, pool_size: int, positions_per_chunk: int | None = None) -> Tensor:
        """x: (B, E, T, h, w); guidance: (B, T, G) -> (B, E, T, h, w), channels-last.

        Without pooling the block is local to a position, so it runs on `positions_per_chunk`
        positions of one image at a time (see `model.chunks`); None runs all at once.
        """
        b, e, t, h, w = x.shape
        tokens = x.permute(0, 2, 3, 4, 1)  # (B, T, h, w, E)
        pad = None
        if t < self.pad_len:
            pad = (self.norm1(self.padding_tokens[0, 0]), self.padding_guidance[0, 0], self.pad_len - t)
        length = max(t, self.pad_len)
        guidance = guidance.unsqueeze(2)

        def block(seq: Tensor, guidance: Tensor) -> Tensor:
            seq = seq + self.attention(self.norm1(seq), guidance, length, pad)
            return seq + self.MLP(self.norm2(seq))

        if pool_size > 1:
            pooled = F.avg_pool2d(tokens.permute(0, 1, 4, 2, 3).reshape(b, t * e, h, w), pool_size)
            hp, wp = pooled.shape[-2:]
            seq = block(pooled.view(b, t, e, hp * wp).transpose(2, 3), guidance)
            up = F.interpolate(seq.transpose(2, 3).reshape(b, t * e, hp, wp), size=(h, w), mode="bilinear",
                               align_corners=True)
            out = tokens + up.view(b, t, e, h, w).permute(0, 1, 3, 4, 2)
            return out.permute(0, 4, 1, 2, 3)
        seq = tokens.reshape(b, t, h * w, e)

        def residual(images: slice, positions: slice) -> Tensor:
            chunk = seq[images, :, positions]
            return chunk + block(chunk, guidance[images])

        out = run_chunked(residual, b, h * w, positions_per_chunk, dim=2)
        return out.view(b, t, h, w, e).permute(0, 4, 1, 2, 3)


class AggregatorLayer(nn.Module):
    def __init__(self, config: CATSegConfig):
        super().__init__()
        c = config
        self.swin_block = SpatialAggregation(
            c.hidden_dim, c.appearance_guidance_proj_dim, c.num_heads, c.feature_size, c.window_size
        )
        self.attention = ClassAggregation(c.hidden_dim, c.text_guidance_proj_dim, c.num_heads, c.pad_len)

    def forward(self, x: Tensor, appearance_guidance: Tensor, text_guidance: Tensor, pool_size: int,
                chunk_bytes: int | None = None) -> Tensor:
        """x: (B, E, T, h, w); `chunk_bytes`: the budget of `model.chunks` for the MLP activation
        (4E float32 per token) of a chunk, or None."""
        b, e, t, h, w = x.shape
        token_bytes = 4 * e * x.element_size()
        x = self.swin_block(x, appearance_guidance, items_per_chunk(chunk_bytes, h * w * token_bytes))
        return self.attention(x, text_guidance, pool_size, items_per_chunk(chunk_bytes, t * token_bytes))


class Aggregator(nn.Module):
    """Cost volume -> cost embedding -> `num_layers` x (spatial block, class block)."""

    def __init__(self, config: CATSegConfig):
        super().__init__()
        c = config
        self.pad_len = c.pad_len
        # Classes kept per view when there are more: the official inference keeps the top pad_len
        # (by best patch cosine) and gives the others logit -100. None scores every class (not the
        # official protocol: a `--model-args all_classes=true` run).
        self.class_limit: int | None = c.pad_len
        self.cost_embed = nn.Conv2d(1, c.hidden_dim, c.cost_embed_kernel, padding=c.cost_embed_kernel // 2)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(c.embed_dim, c.appearance_guidance_proj_dim, 3, padding=1), nn.ReLU()
        )
        self.text_guidance_projection = nn.Sequential(nn.Linear(c.embed_dim, c.text_guidance_proj_dim), nn.ReLU())
        self.layers = nn.ModuleList(AggregatorLayer(c) for _ in range(c.num_layers))

    def forward(self, img_feats: Tensor, text: Tensor, pool_size: int,
                chunk_bytes: int | None = None) -> tuple[Tensor, Tensor | None]:
        """img_feats: (B, C, h, w) dense CLIP features; text: (B, T, C) class embeddings;
        chunk_bytes: see `AggregatorLayer`.

        Returns the aggregated cost embedding (B, E, T', h, w) and, when T > `class_limit`, the
        indices (B, T') of the T' = `class_limit` classes kept per window (None otherwise).
        """
        corr = cost_volume(img_feats, text)
        selected = None
        if self.class_limit is not None and text.shape[1] > self.class_limit:
            selected = select_top_classes(corr, self.class_limit)
            corr = torch.gather(corr, 1, selected[:, :, None, None].expand(-1, -1, *corr.shape[2:]))
            text = torch.gather(text, 1, selected[:, :, None].expand(-1, -1, text.shape[-1]))
        b, t, h, w = corr.shape
        x = self.cost_embed(corr.reshape(b * t, 1, h, w))
        # Channels-last from here on: (B, T, h, w, E) in memory, seen as (B, E, T, h, w).
        x = x.view(b, t, -1, h, w).permute(0, 1, 3, 4, 2).contiguous().permute(0, 4, 1, 2, 3)
        appearance_guidance = self.guidance_projection(img_feats)
        text_guidance = self.text_guidance_projection(F.normalize(text, dim=-1))
        for layer in self.layers:
            x = layer(x, appearance_guidance, text_guidance, pool_size, chunk_bytes)
        return x, selected
