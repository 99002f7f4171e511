"""Published SAN weights, as data beside the architecture (`model.weights.Weights`).

The official release (`MendelXu/SAN` README, used by the MESS fork's `README.md`) is two detectron2
state dicts in the Hugging Face model repository `Mendel192/san` (MIT), trained on COCO-Stuff-171.
The sha256 values are the files' Git LFS oids as the Hub shows them (commit 112fe8b for B, ffc7de2
for L). The preprocessing is open_clip's OpenAI mean/std x 255 (`SAN.from_config`) and the
templates are the "vild" set (CLIP_TEMPLATE_SET).
"""

from __future__ import annotations

from model.configs import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD
from model.san.config import VILD_TEMPLATES
from model.weights import Weights, register_weights

HUB_REPO = "Mendel192/san"
DESCRIPTION = "official release (COCO-Stuff-171 training), evaluated by MESS and the seed's Table 1"

SAN_WEIGHTS = (
    Weights("san-b", "official", DESCRIPTION, "san_vit_b_16.pth",
            "d616d2767b206d66b70a7742398c9b818beaf9742e134894449196af11bf19da", HUB_REPO, "model",
            CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, prompt_templates=VILD_TEMPLATES, licence="MIT"),
    Weights("san-l", "official", DESCRIPTION, "san_vit_large_14.pth",
            "dd605f75f8ec66a107164b064c3ef217deae2848349dc52e6eab6f0b071bf12c", HUB_REPO, "model",
            CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, prompt_templates=VILD_TEMPLATES, licence="MIT"),
)
SAN_DEFAULT_TAGS = {"san-b": "official", "san-l": "official"}

register_weights(SAN_WEIGHTS, SAN_DEFAULT_TAGS)
