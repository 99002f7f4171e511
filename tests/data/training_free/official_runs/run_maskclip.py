"""Run the official MaskCLIP (mmseg 0.20.2 fork) on the tiny weights; save its outputs.

Steps as the MaskCLIP README: convert_clip_weights.py (with and without --backbone),
prompt_engineering.py's zeroshot_classifier for the text embeddings, then the
maskclip_vit16 config (whole-image inference) built with mmseg and the backbone checkpoint.
"""
import os, runpy, sys, types
import numpy as np
import torch
torch.set_num_threads(2)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stubs

repo = '/tmp/i14/src/chongzhou96+MaskCLIP'
work = '/tmp/i14/maskclip_work'
os.makedirs(f'{work}/pretrain', exist_ok=True)
os.chdir(work)
sys.path.insert(0, '/tmp/i14/src/openai+CLIP')
sys.path.insert(0, repo)
sys.path.insert(0, f'{repo}/tools/maskclip_utils')

# mmcv 1.5.0 was installed without its compiled ops; four mmseg modules import names from mmcv.ops
# that the MaskCLIP path never calls.
ops = types.ModuleType('mmcv.ops')
for name in ('point_sample', 'CrissCrossAttention', 'PSAMask', 'sigmoid_focal_loss'):
    setattr(ops, name, None)
sys.modules['mmcv.ops'] = ops

import clip
from clip.model import build_model

clip.load = stubs.clip_load_with(build_model)
torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run
_torch_load = torch.load
torch.load = lambda f, map_location=None, **k: _torch_load(f, map_location='cpu', **k)

# (1) weights, exactly as the README's two convert commands.
for extra in (['--backbone'], []):
    sys.argv = ['convert_clip_weights.py', '--model', 'ViT16'] + extra
    runpy.run_path(f'{repo}/tools/maskclip_utils/convert_clip_weights.py', run_name='__main__')
# (2) text embeddings with the official templates and averaging.
import prompt_engineering as pe
text = pe.zeroshot_classifier('ViT-B/16', stubs.CLASS_NAMES, pe.prompt_templates)
text = text.permute(1, 0).float()
torch.save(text, 'pretrain/fixture_ViT16_clip_text.pth')

# (3) the segmentor.
from mmcv import Config
from mmcv.runner import load_checkpoint
from mmseg.models import build_segmentor
cfg = Config.fromfile(f'{repo}/configs/_base_/models/maskclip_vit16.py')
cfg.model.backbone.update(embed_dims=128, num_layers=3, num_heads=2, img_size=(112, 112))  # tiny tower
cfg.model.decode_head.update(in_channels=128, text_channels=64, num_classes=3, text_categories=3,
                             text_embeddings_path='pretrain/fixture_ViT16_clip_text.pth',
                             visual_projs_path='pretrain/ViT16_clip_weights.pth')
cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group; unused
cfg.model.train_cfg = None
model = build_segmentor(cfg.model, test_cfg=cfg.get('test_cfg'))
ckpt = load_checkpoint(model, 'pretrain/ViT16_clip_backbone.pth', map_location='cpu')
model.eval()
image = stubs.image('maskclip')
x = stubs.normalized(image, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
meta = [dict(ori_shape=stubs.ORIGINAL_SIZE + (3,), img_shape=image.shape, pad_shape=image.shape, flip=False)]
with torch.no_grad():
    logits = model.whole_inference(x, meta, rescale=True)
    probs = model.inference(x, meta, rescale=True)
pred = probs.argmax(dim=1)[0]
np.savez('/tmp/i14/out/maskclip.npz', text_embeds=text.numpy(), probs=probs[0].numpy(),
         argmax=pred.numpy().astype(np.uint8), slide_logits=logits[0].numpy())
print('maskclip', probs.shape, np.bincount(pred.numpy().ravel()))
