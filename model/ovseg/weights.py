"""Published OVSeg weights, as data beside the architecture (`model.weights.Weights`).

The official release (`facebookresearch/ov-seg` GETTING_STARTED.md; the MESS fork's README downloads
the same file with gdown) of the Swin-B + CLIP ViT-L/14 model is one detectron2 checkpoint,
`ovseg_swinbase_vitL14_ft_mpt.pth` (CLIP fine-tuned, then mask-prompt-tuned), on Google Drive
(file id 1cn-ohxgXDrDfkzC1QdO-fi8IjbjXmgKy), trained on COCO-Stuff-171. Licence CC BY-NC 4.0 (the
repository's LICENSE and README). No public source gives its sha256 (the README gives only an md5
prefix, 526080; the run records the digest of the file it read). The MaskFormer input is
ImageNet-normalised; the templates are the "vild" set.
"""

from __future__ import annotations

from model.maskformer.config import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from model.san.config import VILD_TEMPLATES
from model.weights import Weights, register_weights

GDRIVE_ID = "1cn-ohxgXDrDfkzC1QdO-fi8IjbjXmgKy"
GDRIVE_URL = f"https://drive.google.com/uc?export=download&confirm=pbef&id={GDRIVE_ID}"  # the MESS README's

OVSEG_WEIGHTS = (
    Weights("ovseg-l", "official",
            "official release (COCO-Stuff-171 training, mask prompt tuned), evaluated by MESS and the seed's Table 1",
            "ovseg_swinbase_vitL14_ft_mpt.pth", None, "", "gdrive", IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD,
            prompt_templates=VILD_TEMPLATES, licence="CC BY-NC 4.0", download_url=GDRIVE_URL),
)
OVSEG_DEFAULT_TAGS = {"ovseg-l": "official"}

register_weights(OVSEG_WEIGHTS, OVSEG_DEFAULT_TAGS)
