"""Checkpoints: find them (path, URL, hub), read them, convert official ones, export safetensors.

Official CAT-Seg files are detectron2 checkpoints, `{"model": state_dict, "optimizer": ...}` (or
a bare state dict), with the vendored OpenAI CLIP under `sem_seg_head.predictor.clip_model.` and
q/k/v stored as three matrices. Conversion (`convert_official`) is an explicit prefix table plus
the q/k/v merge; `check_state_dict` then asserts that every key and shape of the model is present
and nothing else, naming what does not fit, so a wrong variant, a v1 checkpoint or an incomplete
file is refused with a message instead of loaded half-way.

Our own format is a safetensors file of the model's canonical state dict with the variant name
in its metadata (`save_safetensors`, `bench convert`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import urllib.parse
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from model.aggregator import shifted_window_mask
from model.common.download import DownloadError, check_sha256, download
from model.common.files import atomic_write
from model.configs import CONFIGS, HUB_REPO_ID, HUB_REPO_TYPE, CATSegConfig

OFFICIAL_CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
OFFICIAL_AGGREGATOR_PREFIX = "sem_seg_head.predictor.transformer."

# Official prefix -> our prefix, tried in order (the first match wins).
OFFICIAL_TO_OURS: tuple[tuple[str, str], ...] = (
    (OFFICIAL_CLIP_PREFIX, "clip."),
    (OFFICIAL_AGGREGATOR_PREFIX + "decoder_guidance_projection.", "decoder.guidance_projection."),
    (OFFICIAL_AGGREGATOR_PREFIX + "decoder1.", "decoder.up1."),
    (OFFICIAL_AGGREGATOR_PREFIX + "decoder2.", "decoder.up2."),
    (OFFICIAL_AGGREGATOR_PREFIX + "head.", "decoder.head."),
    (OFFICIAL_AGGREGATOR_PREFIX + "conv1.", "aggregator.cost_embed."),
    (OFFICIAL_AGGREGATOR_PREFIX, "aggregator."),
    ("upsample1.", "upsample1."),
    ("upsample2.", "upsample2."),
)
SAFETENSORS_FORMAT = "catseg-bench"
LISTED_KEYS = 6  # how many offending keys an error message names


class CheckpointError(Exception):
    """A checkpoint that cannot be found, read or loaded; the message says which and why."""


# ----------------------------------------------------------------------------------- locating
def default_cache_dir() -> Path:
    """Where downloaded checkpoints go: $CATSEG_BENCH_CACHE, else ~/.cache/catseg_bench."""
    return Path(os.environ.get("CATSEG_BENCH_CACHE", Path.home() / ".cache" / "catseg_bench"))


def hub_url(config: CATSegConfig) -> str:
    return f"https://huggingface.co/spaces/{HUB_REPO_ID}/resolve/main/{config.hub_filename}"


def _check_sha256(path: Path, expected: str | None, origin: str) -> str:
    try:
        return check_sha256(path, expected, origin)
    except DownloadError as exc:
        raise CheckpointError(f"{exc}: delete {path} and download it again") from None


def download_url(url: str, cache_dir: Path | None = None, expected_sha256: str | None = None) -> Path:
    """Download `url` into the cache (resuming a partial `.part` file) and check its sha256.

    A `#sha256=<hex>` fragment on the URL gives the expected digest. A finished file in the cache
    is reused. An interrupted download keeps its `.part` file, so running again resumes it.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.fragment.startswith("sha256="):
        expected_sha256 = parsed.fragment.split("=", 1)[1]
        url = urllib.parse.urlunsplit(parsed._replace(fragment=""))
    name = Path(urllib.parse.unquote(parsed.path)).name or "checkpoint.pth"
    target_dir = (cache_dir or default_cache_dir()) / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16]
    target = target_dir / name
    if not target.exists():
        try:
            download(url, target, expected_sha256)
        except DownloadError as exc:
            raise CheckpointError(str(exc)) from None
    return target


def hub_download(config: CATSegConfig, cache_dir: Path | None = None) -> Path:
    """The official weights of a variant from the Hugging Face Space, via huggingface_hub's cache."""
    if not config.hub_filename:
        raise CheckpointError(f"{config.name} has no published weights; pass a checkpoint file")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            repo_id=HUB_REPO_ID,
            repo_type=HUB_REPO_TYPE,
            filename=config.hub_filename,
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise CheckpointError(
            f"could not fetch {config.hub_filename} from the Hugging Face Space {HUB_REPO_ID} ({exc}); "
            f"download {hub_url(config)} yourself and pass the file as the checkpoint"
        ) from exc
    return Path(path)


def resolve_checkpoint(source: str | Path, config: CATSegConfig, cache_dir: Path | None = None) -> tuple[Path, str | None]:
    """A local file for `source` ("hub", an http(s) URL or a path) and its expected sha256, if known."""
    text = str(source)
    if text == "hub":
        return hub_download(config, cache_dir), config.hub_sha256
    if text.startswith(("http://", "https://")):
        known = {hub_url(c): c.hub_sha256 for c in CONFIGS.values() if c.hub_filename}
        expected = known.get(text)
        path = download_url(text, cache_dir, expected)
        return path, expected
    path = Path(text).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass an existing file, an http(s) URL or 'hub'")
    return path, None


# ------------------------------------------------------------------------------------ reading
def read_state_dict(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors of a checkpoint file and its metadata (safetensors only; {} otherwise)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({exc}): write it again") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a PyTorch checkpoint ({str(exc).splitlines()[0]}): "
            "download it again"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} holds no state dict (expected {{'model': state_dict}} or a state dict)")
    return dict(obj), {}


# --------------------------------------------------------------------------------- converting
def is_official(state: dict[str, Tensor]) -> bool:
    return any(k.startswith(("sem_seg_head.", "backbone.")) for k in state)


def convert_official(state: dict[str, Tensor], config: CATSegConfig, origin: str) -> dict[str, Tensor]:
    """Official CAT-Seg (CVPR) key names -> ours; q/k/v merged into `in_proj_weight`.

    The Swin shift masks stored by the official model are computed buffers: they are compared
    with ours (and refused when different) instead of loaded.
    """
    if any(k.startswith("backbone.") for k in state):
        raise CheckpointError(
            f"checkpoint {origin} has a 'backbone.*' part: it is a CAT-Seg v1 (2023) checkpoint "
            "(model_final_*.pth); this model needs the CVPR 2024 weights (model_base.pth / model_large.pth)"
        )
    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for official_key, value in state.items():
        key = official_key
        if key.endswith(".swin_block.block_2.attn_mask"):
            expected = shifted_window_mask(config.feature_size, config.window_size, config.window_size // 2)
            if value.shape != expected.shape or not torch.equal(value.float(), expected):
                raise CheckpointError(f"checkpoint {origin}: {key} is not the Swin shift mask of {config.name}")
            continue
        for official, ours in OFFICIAL_TO_OURS:
            if key.startswith(official):
                key = ours + key[len(official) :]
                break
        else:
            out[key] = value  # left unmapped: reported as unexpected by check_state_dict
            continue
        for part in ("q", "k", "v"):
            suffix = f".attn.{part}_proj_weight"
            if key.startswith("clip.") and key.endswith(suffix):
                qkv.setdefault(key[: -len(suffix)], {"attn": official_key[: -len(suffix)] + ".attn"})[part] = value
                break
        else:
            out[key] = value
    for prefix, parts in qkv.items():
        missing = [p for p in ("q", "k", "v") if p not in parts]
        if missing:
            raise CheckpointError(
                f"checkpoint {origin} is incomplete: {parts['attn']} lacks {', '.join(missing)}_proj_weight"
            )
        out[f"{prefix}.attn.in_proj_weight"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def official_name(key: str) -> str:
    """Our key -> the official checkpoint's name for it (for messages about official files)."""
    for official, ours in OFFICIAL_TO_OURS:
        if key.startswith(ours):
            key = official + key[len(ours) :]
            break
    return key.replace(".attn.in_proj_weight", ".attn.{q,k,v}_proj_weight")


def guess_variant(state: dict[str, Tensor]) -> str | None:
    """The registered variant whose image tower matches the checkpoint's, if any."""
    conv = state.get("clip.visual.conv1.weight")
    if conv is None:
        return None
    layers = sum(1 for k in state if k.startswith("clip.visual.transformer.resblocks.") and k.endswith(".ln_1.weight"))
    for config in CONFIGS.values():
        v = config.vision
        if tuple(conv.shape) == (v.width, 3, v.patch_size, v.patch_size) and layers == v.layers:
            return config.name
    return None


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > LISTED_KEYS else "")


def check_state_dict(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], config: CATSegConfig, origin: str,
                     official: bool = False) -> None:
    """Refuse unless `state` has exactly the expected keys with the expected shapes.

    With `official`, offending keys are named as the official checkpoint names them.
    """
    name = official_name if official else (lambda key: key)
    variant = guess_variant(state)
    if variant is not None and variant != config.name:
        raise CheckpointError(
            f"checkpoint {origin} holds a {variant} model, not {config.name}: choose --model {variant} "
            f"or a {config.name} checkpoint"
        )
    missing = [name(k) for k in expected if k not in state]
    unexpected = [name(k) for k in state if k not in expected]
    wrong_shape = [
        f"{name(k)} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_listed(wrong_shape)}")
    if problems:
        raise CheckpointError(f"checkpoint {origin} does not fit {config.name}: " + "; ".join(problems))


def load_state(source: str | Path, config: CATSegConfig, expected: dict[str, tuple[int, ...]],
               cache_dir: Path | None = None) -> tuple[dict[str, Tensor], str]:
    """Resolve, read, verify and convert a checkpoint: (our state dict, sha256 of the file)."""
    path, expected_sha = resolve_checkpoint(source, config, cache_dir)
    sha = _check_sha256(path, expected_sha, str(path))
    state, metadata = read_state_dict(path)
    if metadata:
        if metadata.get("format") != SAFETENSORS_FORMAT:
            raise CheckpointError(f"checkpoint {path} is a safetensors file but not one written by `bench convert`")
        if metadata.get("model") != config.name:
            raise CheckpointError(
                f"checkpoint {path} holds a {metadata.get('model')} model, not {config.name}: "
                f"choose --model {metadata.get('model')} or a {config.name} checkpoint"
            )
    official = not metadata and is_official(state)
    if official:
        state = convert_official(state, config, str(path))
    check_state_dict(state, expected, config, str(path), official)
    return state, sha


# ----------------------------------------------------------------------------------- exporting
def save_safetensors(state: dict[str, Tensor], config: CATSegConfig, path: Path, source_sha256: str | None) -> None:
    """Write our format atomically: canonical state dict + {format, model, source_sha256} metadata."""
    from safetensors.torch import save_file

    metadata = {"format": SAFETENSORS_FORMAT, "model": config.name}
    if source_sha256:
        metadata["source_sha256"] = source_sha256
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
