"""Published ZSSeg weights, as data beside the architecture (`model.weights.Weights`).

The official release (`MendelXu/zsseg.baseline` README; the MESS fork's README downloads the same
file with gdown) is one detectron2 checkpoint, `model_final.pth`, on Google Drive (file id
1pb6UeXoMPy5xdEBtFcQYLOBKZt0xufKY), trained on COCO-Stuff-156 (seen classes); code and weights
MIT. No public source gives its sha256 (None: the run records the digest of the file it read).
The MaskFormer input is ImageNet-normalised; the templates are the "vild" set.
"""

from __future__ import annotations

from model.maskformer.config import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from model.san.config import VILD_TEMPLATES
from model.weights import Weights, register_weights

GDRIVE_ID = "1pb6UeXoMPy5xdEBtFcQYLOBKZt0xufKY"
GDRIVE_URL = f"https://drive.google.com/uc?export=download&confirm=pbef&id={GDRIVE_ID}"

ZSSEG_WEIGHTS = (
    Weights("zsseg-b", "official", "official release (COCO-Stuff-156 training), evaluated by MESS and the seed's Table 1",
            "model_final.pth", None, "", "gdrive", IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD,
            prompt_templates=VILD_TEMPLATES, licence="MIT", download_url=GDRIVE_URL),
)
ZSSEG_DEFAULT_TAGS = {"zsseg-b": "official"}

register_weights(ZSSEG_WEIGHTS, ZSSEG_DEFAULT_TAGS)
