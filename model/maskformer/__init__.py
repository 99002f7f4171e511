"""MaskFormer inference in plain PyTorch, and the CLIP mask classification of the two-stage
open-vocabulary methods built on it (ZSSeg, OVSeg, ZegFormer). Knows nothing about MESS.

Files (one job each):

* `config.py`: frozen dataclasses for every architecture choice: `ResNetConfig` (detectron2 /
  DeepLab ResNet: stem "basic" or "deeplab", multi-grid res5), `PixelDecoderConfig` (FPN, or with
  `transformer_enc_layers` > 0 the transformer-encoder decoder), `PredictorConfig` (queries,
  decoder, mask-embed MLP, class head "linear" / "mlp" / none), `MaskFormerConfig` (all three +
  padding and pixel mean/std), `MaskClipConfig` (mask threshold, fill, crop size, temperature,
  ensemble weight).
* `layers.py`: detectron2-named `Conv2d` (conv + norm + activation), `FrozenBatchNorm2d`,
  `get_norm`, DETR's `MLP`.
* `resnet.py`: the ResNet backbone (incl. "ResNet-101c": deeplab stem, multi-grid (1, 2, 4)).
* `transformer.py`: DETR encoder/decoder layers and the sine position encoding.
* `pixel_decoder.py`: `BasePixelDecoder`, `TransformerEncoderPixelDecoder`, `build_pixel_decoder`.
* `predictor.py`: `TransformerPredictor` (returns class output or None, and mask logits).
* `modeling.py`: `MaskFormer` (backbone -> pixel decoder -> predictor) and `register_backbone`.
* `inference.py`: normalise + pad, masks to the image size, softmax-without-no-object,
  semantic scores (class probs x sigmoid masks), resize to the original size.
* `clip_classifier.py`: masked crops -> CLIP image embeddings -> cosine logits with text
  embeddings; the geometric ensemble with MaskFormer's probabilities.

Every module keeps the official module names, so `backbone.*`, `sem_seg_head.pixel_decoder.*` and
`sem_seg_head.predictor.*` of an official checkpoint load into `MaskFormer.backbone`,
`.pixel_decoder`, `.predictor` by dropping the `sem_seg_head.` prefix.

How the methods extend it:

* ZSSeg (`model.zsseg`): ResNet-101c, FPN decoder, an "mlp" class head giving 512-d embeddings
  classified against CLIP text embeddings (+ a learned non-object embedding), masked-crop CLIP
  classification, ensemble weight 0.5.
* OVSeg (a modified copy of ZSSeg): registers a Swin backbone (`register_backbone(SwinConfig,
  ...)`), sets the pixel-decoder / predictor fields its configs change (subclass
  `BasePixelDecoder` / `TransformerPredictor` where a few lines differ), and wraps
  `clip_classifier.encode_crops` for mask prompt tuning (its CLIP tower takes the binary masks).
* ZegFormer: a ResNet-101 with the fields of its config, a "linear" (or "mlp") class head
  producing segment embeddings compared with its own text embeddings, and its CLIP
  classification of masked crops through `clip_classifier` with its own prompts and weights.

CLIP towers are open_clip modules from `model.clip_towers` (`build_clip`, `encode_prompts`,
`template_class_embeddings`).
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "MaskFormer": "model.maskformer.modeling",
    "register_backbone": "model.maskformer.modeling",
    "MaskFormerConfig": "model.maskformer.config",
    "ResNetConfig": "model.maskformer.config",
    "PixelDecoderConfig": "model.maskformer.config",
    "PredictorConfig": "model.maskformer.config",
    "MaskClipConfig": "model.maskformer.config",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
