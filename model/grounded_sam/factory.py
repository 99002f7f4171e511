"""Build a Grounded-SAM model: untrained seeded weights, a weights tag, or local files.

`load_grounded_sam(name, checkpoint)`: checkpoint None = the default tag, "none" = untrained
weights (seeded; the stand-in tokenizer vocabulary of `model.grounded_sam.tokenizer`), a tag of
`model.grounded_sam.weights`. Files come from the Hugging Face cache or the download cache; offline
and not cached, a WeightsError names the file to download and the --checkpoint to pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from model.grounded_sam.configs import CONFIGS, GroundedSAMConfig, transformers_configs
from model.grounded_sam.detector import Detector
from model.grounded_sam.masks import MaskPredictor
from model.grounded_sam.tokenizer import bert_tokenizer, standin_vocab
from model.grounded_sam.weights import DEFAULT_TAG, GroundedSAMWeights, WeightsFile, get_weights

UNTRAINED = "none"


class WeightsError(Exception):
    """Weights that cannot be found, read or loaded; the message says which and what to do."""


@dataclass
class GroundedSAM:
    config: GroundedSAMConfig
    detector: Detector
    masks: MaskPredictor
    weights: str  # the tag, or "random"
    weights_sha256: str | None  # one digest over the files read (None: untrained)
    untrained: bool


def load_grounded_sam(name: str, checkpoint: str | None = None, device: torch.device | str = "cpu",
                      seed: int = 0) -> GroundedSAM:
    config = CONFIGS[name]
    device = torch.device(device)
    if checkpoint == UNTRAINED:
        return _untrained(config, device, seed)
    tag = checkpoint or DEFAULT_TAG
    try:
        weights = get_weights(name, tag)
    except KeyError as err:
        raise WeightsError(f"--checkpoint {tag}: {err.args[0]}, or 'none' for untrained weights") from None
    paths = {role: fetch(file, weights) for role, file in
             (("detector", weights.detector), ("sam", weights.sam), ("vocab", weights.vocab))}
    if weights.layout == "transformers":
        for role, repo in (("detector", weights.detector), ("sam", weights.sam)):
            fetch(WeightsFile("config.json", repo.repo_id, revision=repo.revision), weights)
        detector_net = _from_pretrained("GroundingDinoForObjectDetection", paths["detector"], weights)
        sam_net = _from_pretrained("SamModel", paths["sam"], weights)
    else:
        detector_net, sam_net = load_official(config, paths["detector"], paths["sam"])
    digest = hashlib.sha256("".join(_file_digest(paths[r]) for r in ("detector", "sam", "vocab")).encode()).hexdigest()
    return GroundedSAM(config, Detector(detector_net.to(device).eval(), bert_tokenizer(paths["vocab"])),
                       MaskPredictor(sam_net.to(device).eval()), tag, digest, False)


def load_official(config: GroundedSAMConfig, detector_file: Path, sam_file: Path):
    """(GroundingDinoForObjectDetection, SamModel) of `config` with the official files' weights."""
    from model.checkpoint import CheckpointError, read_state_dict
    from model.grounded_sam.convert import ConversionError, convert_groundingdino, convert_sam

    detector, sam = build_networks(config)
    for net, path, convert in ((detector, detector_file, convert_groundingdino), (sam, sam_file, convert_sam)):
        try:
            state, _ = read_state_dict(path)
            net.load_state_dict(convert(state, net, str(path)), strict=True)
        except (CheckpointError, ConversionError) as err:
            raise WeightsError(str(err)) from None
    return detector, sam


def build_networks(config: GroundedSAMConfig):
    """Randomly initialised (GroundingDinoForObjectDetection, SamModel) of `config`."""
    from model.grounded_sam.requirements import require_transformers

    transformers = require_transformers()
    detector_config, sam_config = transformers_configs(config)
    return transformers.GroundingDinoForObjectDetection(detector_config), transformers.SamModel(sam_config)


def _untrained(config: GroundedSAMConfig, device: torch.device, seed: int) -> GroundedSAM:
    # Seeded: every process and a resumed run build the same network; the seed is in the settings.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        detector_net, sam_net = build_networks(config)
    return GroundedSAM(config, Detector(detector_net.to(device).eval(), bert_tokenizer(standin_vocab())),
                       MaskPredictor(sam_net.to(device).eval()), "random", None, True)


def fetch(file: WeightsFile, weights: GroundedSAMWeights) -> Path:
    """A local copy of one file of a tag: the Hugging Face cache for hub files (offline: the cache
    only), the download cache for URLs."""
    hint = (f"download {file.url} (or run once online) and run again, or pass --checkpoint none for untrained "
            "weights")
    if file.repo_id is not None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(repo_id=file.repo_id, filename=file.filename, revision=file.revision))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            reason = " ".join(str(exc).split())[:160]
            raise WeightsError(f"{weights.model} weights '{weights.tag}': {file.filename} of {file.repo_id} is not in the "
                               f"Hugging Face cache and could not be downloaded ({type(exc).__name__}: {reason}); "
                               f"{hint}") from None
    from model.checkpoint import CheckpointError, download_url

    try:
        return download_url(file.url, expected_sha256=file.sha256)
    except CheckpointError as exc:
        raise WeightsError(f"{weights.model} weights '{weights.tag}': {exc}; {hint}") from None


def _from_pretrained(class_name: str, weights_file: Path, weights: GroundedSAMWeights):
    from model.grounded_sam.requirements import require_transformers

    cls = getattr(require_transformers(), class_name)
    net, info = cls.from_pretrained(str(weights_file.parent), output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        from model.common.state_dicts import listed

        shown = "; ".join(f"{k}: {listed([str(key) for key in v])}" for k, v in problems.items())
        raise WeightsError(f"{weights_file}: not the {class_name} of weights '{weights.tag}' ({shown})")
    return net


def _file_digest(path: Path) -> str:
    from model.common.files import sha256_file

    return sha256_file(path)
