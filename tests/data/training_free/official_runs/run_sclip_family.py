"""Run the official SCLIP or NACLIP segmentor on the tiny weights; save its outputs.

Argument: sclip, naclip (PAMR off) or naclip_pamr (NACLIP's constructor defaults: PAMR, 10 steps,
dilations 8 and 16).
"""
import os, sys
import numpy as np
import torch
torch.set_num_threads(2)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stubs
stubs.install()
run = sys.argv[1]
method = run.removesuffix('_pamr')
repo = {'sclip': '/tmp/i14/src/wangf3014+SCLIP', 'naclip': '/tmp/i14/src/sinahmr+NACLIP'}[method]
sys.path.insert(0, repo)
os.chdir(repo)
import clip
from clip.model import build_model

clip.load = stubs.clip_load_with(build_model)
names = stubs.names_file()
if method == 'sclip':
    import clip_segmentor
    seg = clip_segmentor.CLIPForSegmentation(clip_path='ViT-B/16', name_path=names, device=torch.device('cpu'))
else:
    import naclip
    # naclip: pamr_steps=0, PAMR off (the constructor default is 10; see the fixture README).
    pamr = {} if run.endswith('_pamr') else {'pamr_steps': 0}
    seg = naclip.NACLIP(clip_path='ViT-B/16', name_path=names, device=torch.device('cpu'), **pamr)
seg.eval()
captured = {}
stubs.capture_output(seg, 'forward_slide', captured)
image = stubs.image(method)
x = stubs.normalized(image, [122.771, 116.746, 104.094], [68.501, 66.632, 70.323])
sample = stubs.DataSample(stubs.ORIGINAL_SIZE)
with torch.no_grad():
    seg.predict(x, [sample])
probs = sample.out['seg_logits'].data
pred = sample.out['pred_sem_seg'].data[0]
slide_out = captured['forward_slide'][0]
if method == 'naclip':  # NACLIP's forward_slide returns window-size logits; predict resizes them afterwards
    slide_out = torch.nn.functional.interpolate(captured['forward_slide'], size=stubs.ORIGINAL_SIZE, mode='bilinear')[0]
np.savez(f'/tmp/i14/out/{run}.npz', text_embeds=seg.query_features.numpy(), probs=probs.numpy(),
         argmax=pred.numpy().astype(np.uint8), slide_logits=slide_out.numpy())
print(run, probs.shape, pred.shape, np.bincount(pred.numpy().ravel()))
