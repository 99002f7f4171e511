"""Run the official CAT-Seg code on the b300 setup and write the fixture beside this folder.

    cd /path/to/catseg-bench && export PYTHONPATH=$PWD:$PWD/tests:$PWD/benchmarks
    python tests/data/parity_b300/official_runs/make_fixture.py /tmp/catseg-official

/tmp/catseg-official is a checkout of github.com/KU-CVLAB/CAT-Seg at 6d3a188 (needs einops, timm,
ftfy and regex importable). The official modules run unmodified under the stand-ins of
`benchmarks/official_catseg.py`; the weights are the parity formula (seed 0) in the official key
layout; the test-time resize is `model.resize_short_side` (equal to detectron2's mapper: the b12
parity test). One build, two calls of the official `CATSeg.forward`: sliding window (eval.sh) and
the non-sliding path (`TEST.SLIDING_WINDOW False`, the same model with `sliding_window` off).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import model
from official_catseg import build_official
from parity_b300 import B300_DIR, class_names, image, official_state_dict, reduced_config, setup

# What the fixture keeps of each array (the test compares the same slices of ours).
CLASS_STRIDE, PIXEL_STRIDE, LOGIT_STRIDE = 10, 4, 8


def top_two_margin(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs, axis=0)[-2:]
    return (top[1] - top[0]).astype(np.float32)


def selection_margin(corr: torch.Tensor, k: int) -> np.ndarray:
    """Per window: the gap between the k-th and (k+1)-th best class by max cosine."""
    best = corr.flatten(2).amax(-1).sort(dim=-1, descending=True).values
    return (best[:, k - 1] - best[:, k]).double().numpy()


def main(official: Path) -> None:
    torch.set_num_threads(2)
    spec = setup()
    config = reduced_config(spec)
    names = class_names()
    assert len(names) == spec["num_classes"] and len(set(names)) == len(names)
    state = official_state_dict(config, spec["seed"])
    original = image(spec)
    resized = model.resize_short_side(original)
    height, width = original.shape[:2]
    batched = [{"image": torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))), "height": height,
                "width": width}]

    with tempfile.TemporaryDirectory() as workdir:
        net = build_official(official, state, "catseg-b", names, Path(workdir),
                             head_overrides=spec["official_head_overrides"])
    seen: dict[str, list] = {"corr": [], "logits": []}
    aggregator = net.sem_seg_head.predictor.transformer
    correlation = aggregator.correlation

    def keep_first_corr(img_feats, text_feats):  # the all-class cost volume, before the top-k
        out = correlation(img_feats, text_feats)
        seen["corr"].append(out)
        return out

    aggregator.correlation = keep_first_corr
    aggregator.register_forward_hook(lambda m, args, out: seen["logits"].append(out))
    arrays, info = {}, {"seconds": {}}
    with torch.no_grad():
        for mode, sliding in (("sliding", True), ("whole", False)):
            seen["corr"].clear(), seen["logits"].clear()
            net.sliding_window = sliding
            start = time.perf_counter()
            probs = net(batched)[0]["sem_seg"].numpy()
            info["seconds"][mode] = round(time.perf_counter() - start, 2)
            assert len(seen["corr"]) == 1 and len(seen["logits"]) == 1
            corr, logits = seen["corr"][0][:, 0], seen["logits"][0]  # (V, T, 24, 24), (V, T, 96, 96)
            arrays[f"{mode}_kept"] = (logits > -100).any(-1).any(-1).numpy()
            arrays[f"{mode}_selection_margin"] = selection_margin(corr, config.pad_len)
            arrays[f"{mode}_logits"] = logits[:, ::CLASS_STRIDE, ::LOGIT_STRIDE, ::LOGIT_STRIDE].numpy()
            arrays[f"{mode}_probs"] = probs[::CLASS_STRIDE, ::PIXEL_STRIDE, ::PIXEL_STRIDE]
            arrays[f"{mode}_argmax"] = probs.argmax(0).astype(np.uint16)
            arrays[f"{mode}_top1_minus_top2"] = top_two_margin(probs)
            info[mode] = {"views": int(logits.shape[0]), "kept_per_view": arrays[f"{mode}_kept"].sum(1).tolist(),
                          "min_selection_margin": float(arrays[f"{mode}_selection_margin"].min()),
                          "classes_in_argmax": int(np.unique(arrays[f"{mode}_argmax"]).size),
                          "pixels_margin_below_1e-5": int((arrays[f"{mode}_top1_minus_top2"] <= 1e-5).sum())}
    arrays["text_embeds"] = net.sem_seg_head.predictor.cache[:, 0].numpy()
    np.savez_compressed(B300_DIR / "b300.npz", **arrays)
    info.update(
        official_commit="6d3a188af95165147fe2f34a8237fa7d2633e784",
        image_sha256=hashlib.sha256(original.tobytes()).hexdigest(),
        image_resized_shape=list(resized.shape),
        strides={"class": CLASS_STRIDE, "pixel": PIXEL_STRIDE, "logit": LOGIT_STRIDE},
        parameters=sum(p.numel() for p in net.parameters()),
        versions={"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        threads=torch.get_num_threads(),
    )
    (B300_DIR / "b300_run.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
