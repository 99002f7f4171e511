"""Stand-ins for the mmseg 1.x / mmengine imports of SCLIP, ClearCLIP and NACLIP (plumbing only)."""
import sys, types
import torch
import numpy as np

def install():
    class BaseSegmentor(torch.nn.Module):
        def __init__(self, data_preprocessor=None, init_cfg=None):
            super().__init__()
            self.data_preprocessor = data_preprocessor
    class SegDataPreProcessor:
        def __init__(self, **kw):
            self.kw = kw
    class PixelData:
        def __init__(self, data):
            self.data = data
    class Registry:
        def register_module(self, *a, **k):
            return lambda cls: cls
    mods = {
        'mmseg': {}, 'mmseg.models': {}, 'mmseg.models.segmentors': {'BaseSegmentor': BaseSegmentor},
        'mmseg.models.data_preprocessor': {'SegDataPreProcessor': SegDataPreProcessor},
        'mmseg.registry': {'MODELS': Registry()},
        'mmengine': {}, 'mmengine.structures': {'PixelData': PixelData},
    }
    for name, attrs in mods.items():
        m = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(m, k, v)
        sys.modules[name] = m

class DataSample:
    def __init__(self, ori_shape):
        self.metainfo = dict(ori_shape=ori_shape, img_path='fixture.png')
        self.out = {}
    def set_data(self, d):
        self.out.update(d)

def normalized(image_rgb_uint8, mean, std):
    x = torch.from_numpy(image_rgb_uint8).permute(2, 0, 1)[None].float()
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

def tiny_state_dict():
    return torch.load('/tmp/i14/tiny_openai.pt')

def image(method):
    return np.load('/tmp/i14/inputs.npz')[method]

CLASS_NAMES = ["sky", "tree", "road"]
ORIGINAL_SIZE = (120, 160)


def clip_load_with(build_model):
    """`clip.load` (jit=False) without the download: its own two steps on the tiny state dict."""
    def load(name, device='cpu', jit=False, download_root=None):
        model = build_model(tiny_state_dict()).to(device)
        if str(device) == 'cpu':
            model.float()
        return model, None
    return load


def names_file():
    path = '/tmp/i14/names.txt'
    with open(path, 'w') as f:
        f.write('\n'.join(CLASS_NAMES))
    return path


def capture_output(obj, method_name, captured):
    """Wrap obj.method_name so that its last output is kept in captured[method_name]."""
    original = getattr(obj, method_name)
    def wrapper(*a, **k):
        out = original(*a, **k)
        captured[method_name] = out.clone()
        return out
    setattr(obj, method_name, wrapper)
