"""A check (no fixture) of the `model.maskformer` variants ZSSeg-B does not use, against the official
modules: detectron2's basic-stem ResNet-50, `TransformerEncoderPixelDecoder` (2 encoder layers),
`TransformerPredictor` on the encoder features with a linear class head, post- and pre-norm; random
weights (FrozenBN statistics too), float64, a 96 x 128 input. Prints the max abs differences.

    python check_variants.py /tmp/zsfx/zsseg /tmp/zsfx/detectron2 /path/to/catseg-bench
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ZSSEG, DETECTRON2, PROJECT = sys.argv[1:4]
sys.path[:0] = [HERE, PROJECT]
import standins  # noqa: E402

standins.install()
standins.load_detectron2_backbone(DETECTRON2)
standins.install_zsseg_packages(ZSSEG)
from detectron2.config import get_cfg
from detectron2.projects.deeplab import add_deeplab_config
from mask_former.config import add_mask_former_config
import mask_former.modeling.heads.pixel_decoder as pd
import mask_former.modeling.transformer.transformer_predictor as tp
from detectron2.modeling import build_backbone
from model.maskformer.config import MaskFormerConfig, PixelDecoderConfig, PredictorConfig, ResNetConfig
from model.maskformer.modeling import MaskFormer
torch.manual_seed(0)
for pre_norm in (False, True):
    cfg = get_cfg(); add_deeplab_config(cfg); add_mask_former_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"; cfg.MODEL.RESNETS.DEPTH = 50; cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]; cfg.MODEL.RESNETS.STEM_TYPE = "basic"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res2", "res3", "res4", "res5"]; cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 256
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 2; cfg.MODEL.MASK_FORMER.PRE_NORM = pre_norm
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 7; cfg.MODEL.BACKBONE.FREEZE_AT = 0
    backbone = build_backbone(cfg).double().eval()
    dec = pd.TransformerEncoderPixelDecoder(cfg, backbone.output_shape()).double().eval()
    pred = tp.TransformerPredictor(cfg, 256, mask_classification=True).double().eval()
    ours = MaskFormer(MaskFormerConfig(backbone=ResNetConfig(depth=50), pixel_decoder=PixelDecoderConfig(transformer_enc_layers=2),
        predictor=PredictorConfig(pre_norm=pre_norm, in_feature="transformer_encoder", class_head="linear", class_out=8, num_queries=10))).double().eval()
    pred.query_embed = torch.nn.Embedding(10, 256).double()
    # randomise norms too
    for m in (backbone, dec, pred):
        for n, b in m.named_buffers():
            if "running_var" in n: b.uniform_(0.5, 1.5)
            elif "running_mean" in n or (n.endswith("weight") or n.endswith("bias")): b.normal_(0, 0.1).add_(1.0 if n.endswith("weight") else 0)
    state = {**{"backbone." + k: v for k, v in backbone.state_dict().items()}, **{"pixel_decoder." + k: v for k, v in dec.state_dict().items()},
             **{"predictor." + k: v for k, v in pred.state_dict().items()}}
    ours.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64)
    with torch.no_grad():
        f = backbone(x); mf, enc = dec.forward_features(f); out = pred(enc, mf)
        c, m = ours(x)
    print("pre_norm", pre_norm, "class", float((c - out["pred_logits"]).abs().max()), "masks", float((m - out["pred_masks"]).abs().max()), "absmax", float(out["pred_masks"].abs().max()))
