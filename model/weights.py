"""Published weights of the CAT-Seg architectures, as data beside the architecture configs.

As open_clip's pretrained tags and timm's `PretrainedCfg`: a (model, tag) pair names one file of
weights — where it is published, its sha256, and the preprocessing and prompt template it was
trained with. `create_model(name, checkpoint="cvpr2024")` loads a tag ("hub" is the model's default
tag) and applies its preprocessing; the architecture configs in `model.configs` carry OpenAI CLIP's
conventions for untrained use. Adding a release is adding one entry here; another family keeps its
table in its own folder and registers it (`register_weights`, e.g. `model.san.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.configs import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, PROMPT_TEMPLATE

DEFAULT_TAG_ALIAS = "hub"  # --checkpoint hub: the model's default tag


@dataclass(frozen=True)
class Weights:
    model: str  # architecture (a `model.configs` name)
    tag: str
    description: str
    filename: str  # file name in the hub repository
    sha256: str | None  # of that file (its Git LFS oid); None where no public source gives it
    hub_repo_id: str
    hub_repo_type: str  # "model", "space" or "dataset"
    pixel_mean: tuple[float, float, float] = CLIP_PIXEL_MEAN  # on the 0-255 scale
    pixel_std: tuple[float, float, float] = CLIP_PIXEL_STD
    prompt_template: str = PROMPT_TEMPLATE  # CAT-Seg: one template
    # Families that average several templates (SAN's "vild" set) list them here instead.
    prompt_templates: tuple[str, ...] = ()
    licence: str = "MIT"  # of the weights' official release
    download_url: str | None = None  # a file published outside the Hugging Face Hub (ZSSeg: Google Drive)

    @property
    def url(self) -> str:
        if self.download_url is not None:
            return self.download_url
        kind = "" if self.hub_repo_type == "model" else f"{self.hub_repo_type}s/"
        return f"https://huggingface.co/{kind}{self.hub_repo_id}/resolve/main/{self.filename}"


# The official CVPR 2024 weights live in a Hugging Face *Space*, not a model repository.
_CVPR_SPACE = "hamacojr/CAT-Seg-weights"

WEIGHTS: dict[tuple[str, str], Weights] = {
    (w.model, w.tag): w
    for w in (
        Weights("catseg-b", "cvpr2024", "official CVPR 2024 release (COCO-Stuff-171 training), the seed's Table 1",
                "model_base.pth", "a201a50f94f4c04196e3083773832b736c2b8b81d27ea2c59cc13af3aff05760",
                _CVPR_SPACE, "space"),
        Weights("catseg-l", "cvpr2024", "official CVPR 2024 release (COCO-Stuff-171 training), the seed's Table 1",
                "model_large.pth", "80722f4b328161aa15d25d278e832a824b72af4486b013f664757ae7cc020f61",
                _CVPR_SPACE, "space"),
    )
}
DEFAULT_TAGS = {"catseg-b": "cvpr2024", "catseg-l": "cvpr2024"}


def register_weights(entries: tuple[Weights, ...], defaults: dict[str, str]) -> None:
    """Add another family's published weights (`model.san.weights` does at import) and the
    default tag of each of its models."""
    for weights in entries:
        key = (weights.model, weights.tag)
        if WEIGHTS.get(key, weights) != weights:
            raise ValueError(f"weights tag {key} is registered twice with different contents")
        WEIGHTS[key] = weights
    DEFAULT_TAGS.update(defaults)


def weights_tags(model: str) -> list[str]:
    return sorted(tag for name, tag in WEIGHTS if name == model)


def tags_default_first(model: str) -> list[str]:
    """The model's published weights tags, its default first (what `bench models list` shows)."""
    default = DEFAULT_TAGS.get(model)
    return sorted(weights_tags(model), key=lambda tag: tag != default)


def weights_licences(model: str) -> dict[str, str]:
    """Tag -> licence of the weights' official release, for each published tag of `model`."""
    return {tag: w.licence for (name, tag), w in WEIGHTS.items() if name == model}


def default_weights(model: str) -> Weights | None:
    """The weights a model loads by default (None: it has no published weights)."""
    tag = DEFAULT_TAGS.get(model)
    return WEIGHTS[(model, tag)] if tag is not None else None


def get_weights(model: str, tag: str) -> Weights:
    """The weights `tag` of `model`; ``hub`` is the default tag."""
    weights = default_weights(model) if tag == DEFAULT_TAG_ALIAS else WEIGHTS.get((model, tag))
    if weights is None:
        known = ", ".join(weights_tags(model))
        if not known:
            raise KeyError(f"{model} has no published weights")
        raise KeyError(f"{model} has no weights tag '{tag}' (tags: {known})")
    return weights


def weights_at_url(url: str) -> Weights | None:
    """The tag whose published file `url` is, so a download by URL is checked against its sha256."""
    return next((w for w in WEIGHTS.values() if w.url == url), None)
