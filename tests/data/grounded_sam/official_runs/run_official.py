"""Make the Grounded-SAM parity fixture with the official code (run OUTSIDE the project; README beside).

The MESS fork's own `GroundedSAM.forward` / `predict` / `predict_gdino` / `predict_sam`
(blumenstiel/Grounded-SAM-MESS@90a4872, model/grounded_sam_model.py) drives the official
GroundingDINO of groundingdino-py 0.4.0 (= IDEA-Research/GroundingDINO@31aa788, `Model.predict_with_classes`,
CPU path of MultiScaleDeformableAttention) and segment_anything's `SamPredictor`, on reduced configs
filled with the parity fill formula (tests/test_model_parity.py `fill`, ../shared/parity/README.md
section 2). Stand-ins, written to a temporary folder: detectron2 (registry and `configurable` as
no-op decorators, `sem_seg_postprocess` as detectron2's crop + bilinear resize), supervision
(`Detections` as a plain record), addict / yapf / pycocotools (imported, unused), BERT (config-built,
no download) and its tokenizer (BertTokenizerFast over catseg-bench's stand-in vocabulary).

    python run_official.py --gdino GD31 --sam SAM --fork FORK --transformers4 TF4 --out OUTDIR
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
import textwrap
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
STUBS = {
    "addict.py": "class Dict(dict):\n    pass\n",
    "yapf/__init__.py": "",
    "yapf/yapflib/__init__.py": "",
    "yapf/yapflib/yapf_api.py": "def FormatCode(*args, **kwargs):\n    raise NotImplementedError\n",
    "pycocotools/__init__.py": "",
    "pycocotools/mask.py": "",
    "supervision/__init__.py": textwrap.dedent("""
        class Detections:
            def __init__(self, xyxy, confidence=None, class_id=None):
                self.xyxy, self.confidence, self.class_id = xyxy, confidence, class_id
    """),
    "detectron2/__init__.py": "",
    "detectron2/modeling/__init__.py": textwrap.dedent("""
        class _Registry:
            def register(self, obj=None):
                return (lambda cls: cls) if obj is None else obj
        META_ARCH_REGISTRY = _Registry()
    """),
    "detectron2/modeling/postprocessing.py": textwrap.dedent("""
        import torch.nn.functional as F
        RECORD = []
        def sem_seg_postprocess(result, img_size, output_height, output_width):
            RECORD.append(result.clone())
            result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
            return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]
    """),
    "detectron2/data/__init__.py": "class MetadataCatalog:\n    pass\n",
    "detectron2/config/__init__.py": "def configurable(init_func=None, **kwargs):\n    return init_func\n",
}

# The reduced configs (the test builds transformers models with the same numbers).
CLASSES = ["a b", "c", "d"]  # "a b": a two-word name, as "concrete or asphalt"
BACKGROUND = 2
ORIGINAL_SIZE = (96, 128)
SEED = 0
GDINO_ARGS = dict(backbone="swin_T_224_1k", dim_feedforward=256, enc_layers=2, dec_layers=2,
                  num_queries=50)
BERT = dict(vocab_size=1100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
SAM_VIT = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=[1])


def write_stubs(folder: Path) -> None:
    for name, text in STUBS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--gdino", "--sam", "--fork", "--transformers4", "--out"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--background", type=int, default=BACKGROUND)
    parser.add_argument("--detect-only", action="store_true", help="print the phrases of seeds SEED..SEED+9 and stop")
    parser.add_argument("--time", type=int, default=0, help="then time N more forwards (benchmarks/grounded_sam_speed.py)")
    args = parser.parse_args()
    classes = args.classes.split(",")
    stubs = Path(tempfile.mkdtemp())
    write_stubs(stubs)
    sys.path[:0] = [str(args.transformers4), str(stubs), str(args.gdino), str(args.sam), str(REPO), str(REPO / "tests")]

    import numpy as np
    import torch
    import transformers

    assert transformers.__version__.startswith("4."), transformers.__version__
    torch.set_num_threads(2)
    from functools import partial

    from groundingdino.util import get_tokenlizer, inference
    from segment_anything import SamPredictor
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    from model.grounded_sam.tokenizer import standin_vocab
    from model.inference import resized_shape
    from test_model_parity import fill, make_image

    vocab_file = stubs / "vocab.txt"
    vocab_file.write_text("\n".join(standin_vocab()) + "\n")
    get_tokenlizer.get_tokenlizer = lambda name: transformers.BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    get_tokenlizer.get_pretrained_language_model = lambda name: transformers.BertModel(transformers.BertConfig(**BERT))
    from groundingdino.models.GroundingDINO.groundingdino import build_groundingdino

    cfg: dict = {}
    exec((args.gdino / "groundingdino/config/GroundingDINO_SwinB_cfg.py").read_text(), {}, cfg)
    cfg.update(GDINO_ARGS, device="cpu")
    gdino = build_groundingdino(types.SimpleNamespace(**cfg))
    sam = Sam(
        image_encoder=ImageEncoderViT(depth=SAM_VIT["depth"], embed_dim=SAM_VIT["embed_dim"], img_size=1024, mlp_ratio=4,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=SAM_VIT["num_heads"],
                                      patch_size=16, qkv_bias=True, use_rel_pos=True,
                                      global_attn_indexes=SAM_VIT["global_attn_indexes"], window_size=14, out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256,
                                 mlp_dim=2048, num_heads=8), transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    )
    keys = {}

    def load_fill(net, seed):
        state = net.state_dict()
        filled = {k: torch.from_numpy(fill(k, v.shape, seed)[0]) for k, v in state.items()
                  if not k.endswith("relative_position_index")}  # computed buffers stay as built
        net.load_state_dict(filled, strict=False)
        net.eval()
        return {k: list(v.shape) for k, v in state.items()}

    if args.detect_only:
        model = object.__new__(inference.Model)
        model.model, model.device = gdino, "cpu"
        image = make_image(768, 1024, 0)
        for seed in range(args.seed, args.seed + 10):
            load_fill(gdino, seed)
            with torch.no_grad():
                found = model.predict_with_classes(image, classes, 0.3, 0.25)
            print(seed, found.class_id.tolist(), flush=True)
        return
    for name, net in (("groundingdino", gdino), ("sam", sam)):
        keys[name] = load_fill(net, args.seed)

    fork = load_file("fork_grounded_sam_model", args.fork / "model/grounded_sam_model.py")
    from detectron2.modeling import postprocessing

    # The fork's GroundedSAM without its __init__ (which downloads the weights): the same attributes.
    seg = object.__new__(fork.GroundedSAM)
    torch.nn.Module.__init__(seg)
    seg.device = "cpu"
    seg.sam = SamPredictor(sam)
    detector = object.__new__(inference.Model)
    detector.model, detector.device = gdino, "cpu"
    seg.groundingdino = detector
    seg.class_names, seg.num_classes = classes, len(classes)

    # Record what the fork computes on the way (the wrappers call the originals unchanged).
    seen: dict = {}
    raw_forward = gdino.forward

    def forward(*a, **k):
        out = raw_forward(*a, **k)
        seen["pred_logits"], seen["pred_boxes"] = out["pred_logits"][0].clone(), out["pred_boxes"][0].clone()
        return out

    gdino.forward = forward
    raw_predict = inference.predict

    def predict(*a, **k):
        boxes, logits, phrases = raw_predict(*a, **k)
        seen["phrases"] = list(phrases)
        return boxes, logits, phrases

    inference.predict = predict
    raw_seg_predict = seg.predict

    def seg_predict(image, prompts):
        masks, boxes, class_ids, logits = raw_seg_predict(image, prompts)
        seen.update(masks=masks.clone(), boxes=boxes.clone(), class_ids=class_ids.clone(), logits=logits.clone())
        return masks, boxes, class_ids, logits

    seg.predict = seg_predict

    original = make_image(*ORIGINAL_SIZE, args.seed)
    h, w = resized_shape(*ORIGINAL_SIZE, 1024, 1024)  # detectron2 ResizeShortestEdge(1024, 1024), PIL bilinear
    from PIL import Image

    resized = np.asarray(Image.fromarray(original).resize((w, h), Image.BILINEAR))
    batched = [{"image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))),
                "height": ORIGINAL_SIZE[0], "width": ORIGINAL_SIZE[1]}]
    # Twice: the set's background class, and a set without one (MESS background_class 255).
    variants = {}
    for variant, background in (("background", args.background), ("no_background", 255)):
        seg.background_class = background if background <= len(classes) else len(classes)  # fork:70-72
        with torch.no_grad():
            [result] = seg.forward(batched)
        scores = postprocessing.RECORD[-1]
        # The pixels the fork gave to the background channel (fork:179): recovered from the scores,
        # where that channel is 1 and every other is <= 0.
        others = torch.cat([scores[: seg.background_class], scores[seg.background_class + 1 :]])
        no_score = (scores[seg.background_class] == 1.0) & (others.max(dim=0).values <= 0)
        variants[variant] = dict(class_ids=seen["class_ids"].numpy(), no_score_bits=np.packbits(no_score.numpy()),
                                 scores_strided=scores[:, ::8, ::8].numpy(), scores_sum=scores.double().sum(dim=(1, 2)).numpy(),
                                 sem_seg=result["sem_seg"].numpy(), labels=result["sem_seg"].argmax(dim=0).numpy().astype(np.uint8))
    tokens = gdino.tokenizer.convert_ids_to_tokens(gdino.tokenizer(inference.preprocess_caption(". ".join(classes)))["input_ids"])

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    n = len(tokens)
    np.savez_compressed(
        out / "official.npz",
        pred_logits=seen["pred_logits"][:, :n].numpy(), pred_boxes=seen["pred_boxes"].numpy(),
        boxes=seen["boxes"].numpy(), confidences=seen["logits"].numpy(),
        mask_logits_strided=seen["masks"][:8, ::16, ::16].numpy(),
        **{f"{variant}/{name}": value for variant, arrays in variants.items() for name, value in arrays.items()},
    )
    meta = {
        "classes": classes, "original_size": ORIGINAL_SIZE, "seed": args.seed, "background_class": args.background,
        "resized_size": [h, w], "resized_sha256": hashlib.sha256(resized.tobytes()).hexdigest(),
        "tokens": tokens, "phrases": seen["phrases"], "gdino_args": GDINO_ARGS, "bert": BERT, "sam_vit": SAM_VIT,
        "transformers": transformers.__version__, "torch": torch.__version__,
    }
    (out / "official.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "official_keys.json").write_text(json.dumps(keys) + "\n")
    if args.time:
        import statistics
        import time

        detect, total = [], []
        for _ in range(args.time):
            start = time.perf_counter()
            with torch.no_grad():
                detector.predict_with_classes(resized, classes, 0.3, 0.25)
            detect.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                seg.forward(batched)
            total.append(time.perf_counter() - start)
        print(f"official, {torch.get_num_threads()} threads, median of {args.time}: {statistics.median(total):.2f} s/image "
              f"(detection {statistics.median(detect):.2f} s)")
    print(f"{len(seen['phrases'])} boxes, phrases {seen['phrases'][:10]}, class ids {seen['class_ids'].tolist()[:10]}")


if __name__ == "__main__":
    main()
