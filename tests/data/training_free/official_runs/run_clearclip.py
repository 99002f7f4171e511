"""Run the official ClearCLIP segmentor (model_type='ClearCLIP') on the tiny weights; save its outputs."""
import os, sys, types
import numpy as np
import torch
torch.set_num_threads(2)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stubs
stubs.install()
repo = '/tmp/i14/src/mc-lan+ClearCLIP'
sys.path.insert(0, repo)
os.chdir(repo)
# BLIP and GEM back other clip_type / model_type values only; their imports need packages we skip.
for name, attrs in {'BLIP': {}, 'BLIP.models': {}, 'BLIP.models.blip_retrieval': {'blip_retrieval': None},
                    'gem': {}}.items():
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    sys.modules[name] = m
import open_clip
assert open_clip.__file__.startswith(repo), open_clip.__file__
import clearclip_segmentor

def create_model(name, pretrained=None, precision='fp32', **kw):
    # open_clip's 'openai' path (load_openai_model) on a local state-dict file, in fp32, no download.
    assert pretrained == 'openai'
    return open_clip.load_openai_model('/tmp/i14/tiny_openai.pt', precision='fp32', device='cpu')

clearclip_segmentor.create_model = create_model
names = stubs.names_file()
seg = clearclip_segmentor.ClearCLIPSegmentation(clip_type='CLIP', vit_type='ViT-B/16', model_type='ClearCLIP',
                                                name_path=names, device=torch.device('cpu'), ignore_residual=True)
seg.eval()
captured = {}
stubs.capture_output(seg, 'forward_slide', captured)
image = stubs.image('clearclip')
x = stubs.normalized(image, [122.771, 116.746, 104.094], [68.501, 66.632, 70.323])
sample = stubs.DataSample(stubs.ORIGINAL_SIZE)
torch.Tensor.half = lambda self: self  # predict() casts inputs to fp16 for its fp16 model; this run is fp32
with torch.no_grad():
    seg.predict(x, [sample])
probs = sample.out['seg_logits'].data
pred = sample.out['pred_sem_seg'].data[0]
np.savez('/tmp/i14/out/clearclip.npz', text_embeds=seg.query_features.numpy(), probs=probs.numpy(),
         argmax=pred.numpy().astype(np.uint8), slide_logits=captured['forward_slide'][0].numpy())
print('clearclip', probs.shape, pred.shape, np.bincount(pred.numpy().ravel()))
