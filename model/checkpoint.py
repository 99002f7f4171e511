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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from model.aggregator import shifted_window_mask
from model.common.download import DownloadError, check_sha256, download
from model.common.files import atomic_write, user_path
from model.common.state_dicts import fit_problems
from model.configs import CONFIGS, CATSegConfig
from model.weights import DEFAULT_TAG_ALIAS, Weights, get_weights, weights_at_url

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


class CheckpointError(Exception):
    """A checkpoint that cannot be found, read or loaded; the message says which and why."""


# ----------------------------------------------------------------------------------- locating
def default_cache_dir() -> Path:
    """Where downloaded checkpoints go: $CATSEG_BENCH_CACHE, else ~/.cache/catseg_bench."""
    return Path(os.environ.get("CATSEG_BENCH_CACHE", Path.home() / ".cache" / "catseg_bench"))




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


def hub_download(weights: Weights, cache_dir: Path | None = None) -> Path:
    """A weights tag's file from the Hugging Face Hub, via huggingface_hub's cache (offline: the cache only)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            repo_id=weights.hub_repo_id,
            repo_type=weights.hub_repo_type,
            filename=weights.filename,
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]  # one line, whatever the hub library said
        raise CheckpointError(
            f"{weights.model} weights '{weights.tag}' ({weights.filename}) are not in the Hugging Face cache and "
            f"could not be downloaded ({type(exc).__name__}: {reason}); download {weights.url} and pass "
            "--checkpoint PATH (or --checkpoint none for untrained weights)"
        ) from exc
    return Path(path)


def _published_file(weights: Weights, cache_dir: Path | None) -> Path:
    """A tag's file published at a plain URL (not the Hub). Google Drive answers large files with a
    confirmation web page instead of the bytes; such a download is removed and refused in one line."""
    path = download_url(weights.download_url, cache_dir, weights.sha256)
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        path.unlink()
        raise CheckpointError(
            f"{weights.model} weights '{weights.tag}': {weights.url} answered with a web page, not "
            f"{weights.filename}; download it in a browser (or with gdown) and pass --checkpoint PATH "
            "(or --checkpoint none for untrained weights)")
    return path


def resolve_checkpoint(
    source: str | Path, config: CATSegConfig, cache_dir: Path | None = None
) -> tuple[Path, Weights | None]:
    """A local file for `source` and the weights tag it is, when known (whose sha256 it must match).

    `source` is a weights tag of the model ("cvpr2024"; "hub" = the default tag), an http(s) URL,
    or a path.
    """
    text = str(source)
    if text.startswith(("http://", "https://")):
        weights = weights_at_url(text)
        expected = weights.sha256 if weights is not None else None
        return download_url(text, cache_dir, expected), weights
    path = user_path(text)
    if path.is_file():
        return path, None
    if text == DEFAULT_TAG_ALIAS or "/" not in text and path.suffix == "":
        try:
            weights = get_weights(config.name, text)
        except KeyError as err:
            raise CheckpointError(f"checkpoint '{text}': {err.args[0]}; or pass a file or an http(s) URL") from None
        if weights.download_url is not None:
            return _published_file(weights, cache_dir), weights
        return hub_download(weights, cache_dir), weights
    raise CheckpointError(f"checkpoint {path} does not exist: pass an existing file, an http(s) URL or a weights tag")


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
    except pickle.UnpicklingError as exc:
        detail = next((line.split(":", 1)[1].strip() for line in str(exc).splitlines() if "WeightsUnpickler error" in line), None)
        if detail is None or not detail.startswith("Unsupported global"):
            raise CheckpointError(
                f"checkpoint {path} is truncated or not a PyTorch checkpoint ({str(exc).splitlines()[0]}): download it again"
            ) from exc
        # torch's message goes on to advise weights_only=False, i.e. running the file's code: not repeated.
        raise CheckpointError(
            f"checkpoint {path} holds Python objects besides tensors ({detail.split('. ')[0]}), which are not "
            "loaded since unpickling them can run code: save a plain state dict (torch.save(model.state_dict())) "
            "or safetensors"
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
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


def guess_variant(state: dict[str, Tensor], configs: dict | None = None) -> str | None:
    """The registered variant (of `configs`: CAT-Seg's by default; any family whose configs have
    `vision` and `name`) whose CLIP image tower matches the state dict's, if any."""
    conv = state.get("clip.visual.conv1.weight")
    if conv is None:
        return None
    layers = sum(1 for k in state if k.startswith("clip.visual.transformer.resblocks.") and k.endswith(".ln_1.weight"))
    for config in (CONFIGS if configs is None else configs).values():
        v = config.vision
        if tuple(conv.shape) == (v.width, 3, v.patch_size, v.patch_size) and layers == v.layers:
            return config.name
    return None


def check_state_dict(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], config: CATSegConfig, origin: str,
                     official: bool = False) -> None:
    """Refuse unless `state` has exactly the expected keys with the expected shapes.

    With `official`, offending keys are named as the official checkpoint names them.
    """
    check_keys(state, expected, config.name, origin, official_name if official else None, guess_variant)


def check_keys(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], model_name: str, origin: str,
               name: Callable[[str], str] | None = None, guess: Callable[[dict], str | None] | None = None) -> None:
    """Refuse unless `state` has exactly the expected keys with the expected shapes (any family).

    `name` renames offending keys for the message (to the official checkpoint's names); `guess`
    names the registered model a state dict belongs to, when it can tell.
    """
    name = name or (lambda key: key)
    variant = guess(state) if guess is not None else None
    if variant is not None and variant != model_name:
        raise CheckpointError(
            f"checkpoint {origin} holds a {variant} model, not {model_name}: choose --model {variant} "
            f"or a {model_name} checkpoint"
        )
    problems = fit_problems({k: tuple(v.shape) for k, v in state.items()}, expected, name)
    if problems:
        raise CheckpointError(f"checkpoint {origin} does not fit {model_name}: " + "; ".join(problems))


@dataclass(frozen=True)
class OfficialFormat:
    """How a model family's official checkpoints are recognised, converted and named in messages."""

    detect: Callable[[dict], bool]  # is this state dict in the official layout?
    convert: Callable[[dict, Any, str], dict]  # (official state, config, origin) -> our state
    name: Callable[[str], str]  # our key -> the official name (for messages)
    guess: Callable[[dict], str | None]  # our state -> the registered model it fits, if known


def load_state(source: str | Path, config: CATSegConfig, expected: dict[str, tuple[int, ...]],
               cache_dir: Path | None = None, official_format: OfficialFormat | None = None
               ) -> tuple[dict[str, Tensor], str, Weights | None]:
    """Resolve, read, verify and convert a checkpoint: (our state dict, sha256 of the file, its
    weights tag when it is a published one). `official_format` is CAT-Seg's unless given."""
    fmt = official_format or CATSEG_FORMAT
    path, weights = resolve_checkpoint(source, config, cache_dir)
    sha = _check_sha256(path, weights.sha256 if weights is not None else None, str(path))
    state, metadata = read_state_dict(path)
    if metadata:
        if metadata.get("format") != SAFETENSORS_FORMAT:
            raise CheckpointError(f"checkpoint {path} is a safetensors file but not one written by `bench convert`")
        if metadata.get("model") != config.name:
            raise CheckpointError(
                f"checkpoint {path} holds a {metadata.get('model')} model, not {config.name}: "
                f"choose --model {metadata.get('model')} or a {config.name} checkpoint"
            )
    official = not metadata and fmt.detect(state)
    if official:
        state = fmt.convert(state, config, str(path))
    check_keys(state, expected, config.name, str(path), fmt.name if official else None, fmt.guess)
    return state, sha, weights


CATSEG_FORMAT = OfficialFormat(is_official, convert_official, official_name, guess_variant)


# ----------------------------------------------------------------------------------- exporting
def save_safetensors(state: dict[str, Tensor], config: CATSegConfig, path: Path, source_sha256: str | None) -> None:
    """Write our format atomically: canonical state dict + {format, model, source_sha256} metadata."""
    from safetensors.torch import save_file

    metadata = {"format": SAFETENSORS_FORMAT, "model": config.name}
    if source_sha256:
        metadata["source_sha256"] = source_sha256
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
