"""Published weights of the Grounded-SAM models, as data: one tag = a detector, a SAM and a tokenizer file.

The MESS fork loaded GroundingDINO `groundingdino_swinb_cogcoor.pth` from the hub repository
`ShilongLiu/GroundingDINO` (fork:58-62), SAM `sam_vit_b_01ec64.pth` / `sam_vit_l_0b3195.pth` from
dl.fbaipublicfiles.com (fork:20-24) and BERT's tokenizer as `bert-base-uncased` (GroundingDINO_SwinB
cfg `text_encoder_type`). The default tag `transformers` loads the same weights as converted for
Hugging Face transformers (`IDEA-Research/grounding-dino-base` is the conversion of swinb_cogcoor;
`facebook/sam-vit-base` / `-large` of the SAM files).

sha256: SAM's official files' digests as public projects publish them beside the URLs (vit_b's in
several, vit_l's in one; checked on download); no public source found gives GroundingDINO's or the
hub conversions' digests, so those are None and the run records a digest of the files it read.
Revisions are the repositories' `main`: no pinned commit could be checked offline.
Licence: GroundingDINO, SAM and BERT's tokenizer are each released under Apache-2.0.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TAG = "transformers"


@dataclass(frozen=True)
class WeightsFile:
    """One file: on the Hugging Face Hub (repo_id + filename) or at a plain URL."""

    filename: str
    repo_id: str | None = None
    url_: str | None = None
    revision: str = "main"
    sha256: str | None = None

    @property
    def url(self) -> str:
        if self.url_ is not None:
            return self.url_
        return f"https://huggingface.co/{self.repo_id}/resolve/{self.revision}/{self.filename}"


@dataclass(frozen=True)
class GroundedSAMWeights:
    model: str
    tag: str
    description: str
    layout: str  # "transformers" (hub model repositories) or "official" (converted on load)
    detector: WeightsFile
    sam: WeightsFile
    vocab: WeightsFile
    licence: str = "Apache-2.0"  # of all three releases (GroundingDINO, SAM, BERT)

    def files(self) -> tuple[WeightsFile, ...]:
        return self.detector, self.sam, self.vocab


_GDINO_HF = "IDEA-Research/grounding-dino-base"
_SAM_HF = {"grounded-sam-b": "facebook/sam-vit-base", "grounded-sam-l": "facebook/sam-vit-large"}
_SAM_OFFICIAL = {
    "grounded-sam-b": WeightsFile("sam_vit_b_01ec64.pth", url_="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                                  sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    "grounded-sam-l": WeightsFile("sam_vit_l_0b3195.pth", url_="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
                                  sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
}


def _tags(model: str) -> tuple[GroundedSAMWeights, ...]:
    return (
        GroundedSAMWeights(
            model, "transformers", "transformers conversions of the checkpoints MESS used (hub model repositories)",
            "transformers", WeightsFile("model.safetensors", _GDINO_HF), WeightsFile("model.safetensors", _SAM_HF[model]),
            WeightsFile("vocab.txt", _GDINO_HF),
        ),
        GroundedSAMWeights(
            model, "official", "the official files MESS downloaded, converted to transformers keys on load",
            "official", WeightsFile("groundingdino_swinb_cogcoor.pth", "ShilongLiu/GroundingDINO"), _SAM_OFFICIAL[model],
            WeightsFile("vocab.txt", "google-bert/bert-base-uncased"),
        ),
    )


WEIGHTS: dict[tuple[str, str], GroundedSAMWeights] = {
    (w.model, w.tag): w for model in _SAM_HF for w in _tags(model)
}


def weights_tags(model: str) -> list[str]:
    """The model's tags, the default first."""
    tags = sorted(tag for name, tag in WEIGHTS if name == model)
    return sorted(tags, key=lambda tag: tag != DEFAULT_TAG)


def weights_licences(model: str) -> dict[str, str]:
    """Tag -> licence of the weights' official release, for each of the model's tags."""
    return {tag: w.licence for (name, tag), w in WEIGHTS.items() if name == model}


def get_weights(model: str, tag: str) -> GroundedSAMWeights:
    weights = WEIGHTS.get((model, tag))
    if weights is None:
        raise KeyError(f"{model} has no weights tag '{tag}' (tags: {', '.join(weights_tags(model))})")
    return weights
