"""Pick the fixture's class names: a set of MESS class names that several classes win pixels for.

With formula weights every text embedding and every mask embedding point nearly the same way (cosine
about 0.95), so for most class lists one class wins every query and every pixel, and the argmax map
tests nothing. The mask proposals and mask embeddings do not depend on the class names, so this
script takes them from a first run_san_official.py run (any class names), encodes every MESS class
name with the official classifier (all templates, float32: only a selection), and scores random 6-name subsets of 48 of them by the
smallest share of pixels a class wins in the composed map at the side adapter's resolution. It prints
the best subset; run_san_official.py --classes then makes the fixture with it.

    PYTHONPATH=/tmp/sanfx/pkgs python choose_classes.py --san ... --project ... --size b \
        --raw /tmp/sanfx/out/b_raw.npz --names tests/data/mess_class_names.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_san_official as runner  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--san", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--size", choices=["b", "l"], required=True)
    p.add_argument("--raw", required=True, help="a run_san_official.py raw npz (its fp64 masks and mask embeddings)")
    p.add_argument("--names", required=True, help="tests/data/mess_class_names.json")
    p.add_argument("--override", nargs="*", default=[])
    p.add_argument("--openai-layers", nargs=2, type=int, default=None)
    p.add_argument("--out", default="/tmp/sanfx/out")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--pool", type=int, default=48, help="candidates: this many MESS names drawn with seed 0")
    args = p.parse_args()
    args.classes = None
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    _, model, _ = runner.build(args)
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    runner.load_formula_weights(model, args.project, keys)
    names = sorted({n.strip() for v in json.load(open(args.names))["class_names"].values() for n in v})
    # the official text tower is slow on a CPU (about 0.2 s per name and template): draw a pool
    names = sorted(np.random.default_rng(0).choice(names, min(args.pool, len(names)), replace=False).tolist())
    with torch.no_grad():
        text = torch.cat([model.ov_classifier(names[i:i + 64]) for i in range(0, len(names), 64)]).double().numpy()
        bg = torch.nn.functional.normalize(model.ov_classifier.bg_embed, dim=-1).double().numpy()[0]
        scale = model.ov_classifier.logit_scale.exp().item()
    print(f"encoded {len(names)} names", flush=True)
    raw = np.load(args.raw)
    emb = raw["fp64_t2/mask_embs"][0]                         # (Q, C)
    info = json.load(open(args.raw.replace("_raw.npz", "_info.json")))
    h, w = info["image_resized_hw"]
    masks = raw["fp64_t2/mask_preds"][0]                      # (Q, h/16, w/16) of the padded image
    masks = masks[:, : -(-h // 16), : -(-w // 16)].reshape(len(masks), -1)
    sig = 1 / (1 + np.exp(-masks))
    logits_all = scale * emb @ text.T                          # (Q, N)
    logit_bg = scale * emb @ bg                                # (Q,)
    rng = np.random.default_rng(0)
    best = (-1.0, None)
    for _ in range(args.trials):
        pick = rng.choice(len(names), args.k, replace=False)
        lg = np.concatenate([logits_all[:, pick], logit_bg[:, None]], 1)
        prob = np.exp(lg - lg.max(1, keepdims=True))
        prob = prob[:, :-1] / prob.sum(1, keepdims=True)
        win = np.bincount((sig.T @ prob).argmax(1), minlength=args.k) / sig.shape[1]
        if win.min() > best[0]:
            best = (win.min(), pick, win)
    share, pick, win = best
    print(json.dumps({"names": [names[i] for i in pick], "pixel_share": win.round(3).tolist(),
                      "candidates": len(names)}))


if __name__ == "__main__":
    main()
