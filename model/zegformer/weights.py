"""Published ZegFormer weights, as data beside the architecture (`model.weights.Weights`).

The official release (dingjiansw101/ZegFormer README, "pre-trained checkpoints" on Google Drive;
the MESS fork's README downloads the same file with gdown, file id 1bA6DXr9VOMsRkU0vyY2EpGRkyQnhnze3)
is one detectron2 checkpoint, `zegformer_R101_bs32_60k_vit16_coco-stuff.pth`, trained on
COCO-Stuff-156 (seen classes); code and weights CC BY-NC 4.0 (the repository's LICENSE). No public
source gives its sha256 (None: the run records the digest of the file it read).

The checkpoint has no CLIP: its training config leaves CLIP classification off, and at test time
the official code loads OpenAI's ViT-B/16 file (`clip.load("ViT-B/16")`) from OpenAI's URL, whose
path carries the file's sha256. The MaskFormer input is ImageNet-normalised; the segment classifier
averages the "imagenet_select" templates (the crop classifier's "imagenet_select_clip" set is
architecture: `model.zegformer.config.CLIP_TEMPLATES`).
"""

from __future__ import annotations

from model.maskformer.config import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
from model.weights import Weights, register_weights
from model.zegformer.config import QUERY_TEMPLATES

GDRIVE_ID = "1bA6DXr9VOMsRkU0vyY2EpGRkyQnhnze3"
GDRIVE_URL = f"https://drive.google.com/uc?export=download&confirm=pbef&id={GDRIVE_ID}"
# OpenAI CLIP ViT-B/16 (mask_former/third_party/clip.py `_MODELS["ViT-B/16"]`); the path holds its sha256.
OPENAI_VIT_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
OPENAI_VIT_B16_URL = f"https://openaipublic.azureedge.net/clip/models/{OPENAI_VIT_B16_SHA256}/ViT-B-16.pt"

ZEGFORMER_WEIGHTS = (
    Weights("zegformer-b", "official",
            "official release (COCO-Stuff-156 training) + OpenAI CLIP ViT-B/16, evaluated by MESS and the seed's Table 1",
            "zegformer_R101_bs32_60k_vit16_coco-stuff.pth", None, "", "gdrive", IMAGENET_PIXEL_MEAN,
            IMAGENET_PIXEL_STD, prompt_templates=QUERY_TEMPLATES, licence="CC BY-NC 4.0", download_url=GDRIVE_URL),
)
ZEGFORMER_DEFAULT_TAGS = {"zegformer-b": "official"}

register_weights(ZEGFORMER_WEIGHTS, ZEGFORMER_DEFAULT_TAGS)
