"""The training-free segmenters in the harness: settings, weights, errors, and a run end to end.

The end-to-end run swaps the open_clip ViT-B-16 for the tiny formula-filled CLIP of the parity
fixtures (`tests/training_free_tiny.py`), so that 80 prompt templates per class stay cheap on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest

import model.training_free
from catseg_bench import registry
from catseg_bench.errors import BenchError
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from model.training_free import LoadedTower

from test_model_parity import make_image
from training_free_tiny import tiny_loaded_clip

SPECS = load_specs()


def segmenter_classes():
    """Imported after the registry's built-ins: importing a built-in module registers its names, and
    the registry lists names in import order (catseg-b first when the built-ins load together)."""
    registry.available_segmenters()
    from catseg_bench.segmenters.training_free import MaskCLIPSegmenter, NACLIPSegmenter, SCLIPSegmenter

    return MaskCLIPSegmenter, SCLIPSegmenter, NACLIPSegmenter


@pytest.fixture
def tiny_tower(monkeypatch):
    """Every segmenter built in the test gets the tiny CLIP (random-weights semantics)."""
    calls = []

    def load(name, pretrained, checkpoint, device, init_seed):
        calls.append((name, pretrained, checkpoint))
        return LoadedTower(tiny_loaded_clip(), open_clip.get_tokenizer("ViT-B-16"), None, checkpoint == "none")

    assert model.training_free.load_tower  # the lazy export exists before it is replaced
    monkeypatch.setattr(model.training_free, "load_tower", load)
    return calls


def test_settings_hold_every_number_changing_knob(tiny_tower):
    _, _, NACLIPSegmenter = segmenter_classes()
    segmenter = NACLIPSegmenter(checkpoint="none", stride=100, pamr_steps=3, gaussian_std=4.0)
    settings = segmenter.settings()
    assert tiny_tower == [("ViT-B-16", "openai", "none")]
    assert segmenter.model_id == "naclip" and segmenter.untrained and segmenter.checkpoint_sha256 is None
    expected = {
        "method": "naclip", "clip": "ViT-B-16", "pretrained": "openai", "weights": "random", "weights_sha256": None,
        "last_block": "naclip", "templates": "openai_imagenet", "logit_scale": 40.0, "short_side": 336,
        "long_side": 2048, "crop": 224, "stride": 100, "gaussian_std": 4.0, "pamr_steps": 3,
        "pamr_dilations": [8, 16], "prob_threshold": 0.0, "precision": "fp32", "random_init_seed": 0,
    }
    assert {key: settings[key] for key in expected} == expected
    assert len(settings["templates_sha256"]) == 16
    json.dumps(settings)  # result files store it


def test_templates_hash_tells_the_sets_apart(tiny_tower):
    MaskCLIPSegmenter, SCLIPSegmenter, _ = segmenter_classes()
    maskclip = MaskCLIPSegmenter(checkpoint="none").settings()
    sclip = SCLIPSegmenter(checkpoint="none").settings()
    assert maskclip["templates_sha256"] != sclip["templates_sha256"]
    assert (maskclip["crop"], maskclip["mlp_activation"], maskclip["layer_norm_eps"]) == (0, "gelu", 1e-6)
    assert "gaussian_std" not in sclip and "pamr_dilations" not in sclip


def test_bad_knob_is_one_line_before_loading_weights(tiny_tower):
    _, SCLIPSegmenter, _ = segmenter_classes()
    with pytest.raises(BenchError, match=r"--model-args for sclip: crop must be >= 0") as err:
        SCLIPSegmenter(crop=-5)
    assert "\n" not in str(err.value) and tiny_tower == []
    with pytest.raises(BenchError, match="--precision fp16"):
        SCLIPSegmenter(precision="fp16")


def test_missing_open_clip_download_is_one_bench_error(monkeypatch):
    _, SCLIPSegmenter, _ = segmenter_classes()
    def offline(config, *args, **kwargs):
        raise OSError("Failed to download file (open_clip_pytorch_model.bin)\nLast error: offline")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(BenchError) as err:
        SCLIPSegmenter()
    message = str(err.value)
    assert "\n" not in message and "ViT-B-16/openai" in message and "timm/vit_base_patch16_clip_224.openai" in message


def test_prepare_resizes_for_the_method(tiny_tower):
    MaskCLIPSegmenter, SCLIPSegmenter, _ = segmenter_classes()
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert SCLIPSegmenter(checkpoint="none").prepare_image(image).shape == (336, 470, 3)  # 70 * 336 / 50 = 470.4
    assert MaskCLIPSegmenter(checkpoint="none").prepare_image(image).shape == (512, 717, 3)


def official_resize(image: np.ndarray, short_side: int, long_side: int = 2048) -> np.ndarray:
    """The official test pipelines' ``Resize(scale=(long_side, short_side), keep_ratio=True)``, written
    from mmcv (v1.5.0 and v2.1.0 `mmcv/image/geometric.py`): `rescale_size` takes the factor
    min(max(scale) / max(h, w), min(scale) / min(h, w)), `_scale_size` rounds int(x * factor + 0.5),
    and `imresize` with its default interpolation 'bilinear' calls cv2.resize(img, (w, h), INTER_LINEAR)."""
    import cv2

    h, w = image.shape[:2]
    factor = min(max(long_side, short_side) / max(h, w), min(long_side, short_side) / min(h, w))
    size = int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("name", ["maskclip", "sclip", "clearclip", "naclip"])
def test_end_to_end_the_resize_is_the_official_one(tiny_tower, name):
    """Original image -> prepare_image -> predict equals the official resize followed by the model
    (whose parity with the official code test_training_free.py shows); 97 x 131 makes the sizes round:
    SCLIP/NACLIP width 131 * 336 / 97 = 453.77 -> 454, ClearCLIP height 97 * 448 / 97 = 447.99999... -> 448."""
    import torch
    import torch.nn.functional as F

    from catseg_bench.segmenters.training_free import ClearCLIPSegmenter

    classes = dict(zip(("maskclip", "sclip", "naclip"), segmenter_classes()), clearclip=ClearCLIPSegmenter)
    segmenter = classes[name](checkpoint="none")
    segmenter.set_classes(("sky", "tree", "road"))
    image = make_image(97, 131, seed=1)
    expected_input = official_resize(image, segmenter.net.method.short_side)
    assert expected_input.shape[:2] == {"maskclip": (512, 691), "clearclip": (448, 605)}.get(name, (336, 454))

    prepared = segmenter.prepare_image(image)
    assert prepared.dtype == np.uint8 and np.array_equal(prepared, expected_input)
    # PyTorch's float bilinear (the resize before) differs: the test can tell the two apart.
    torch_bilinear = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=prepared.shape[:2],
                                   mode="bilinear", align_corners=False)[0].permute(1, 2, 0).add(0.5).floor().numpy()
    assert (torch_bilinear != prepared).any()

    labels = segmenter.predict([prepared], [image.shape[:2]])[0]
    net = segmenter.net
    official = net.labels(net.probabilities(net.image_logits(expected_input, segmenter.class_embeds, image.shape[:2])))
    assert labels.shape == image.shape[:2] and torch.equal(labels, official)


def test_models_list_shows_the_four(cli):
    listed = cli("models", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    for name in ("maskclip", "sclip", "clearclip", "naclip"):
        assert rows[name]["source"] == "built-in"
        assert rows[name]["run_options"] == ["device", "precision", "checkpoint", "seed"]
        assert [a["name"] for a in rows[name]["arguments"]][:2] == ["clip", "pretrained"]
    assert "gaussian_std" in [a["name"] for a in rows["naclip"]["arguments"]]


def test_bench_run_sclip_end_to_end(cli, tiny_tower, tmp_path):
    """`bench run --model sclip --datasets cwfid,suim --data-root SYNTH --checkpoint none`, then the
    table and the report beside the published rows."""
    data, out = tmp_path / "synth", tmp_path / "runs"
    write_suite(data, [SPECS["cwfid"], SPECS["suim"]], images_per_set=1, seed=0)
    ran = cli("run", "--model", "sclip", "--model-args", "stride=150", "--datasets", "cwfid,suim", "--data-root", data,
              "--checkpoint", "none", "--output", out, "--workers", "0", "--published", "none")
    assert ran.exit_code == 0, ran.output
    assert tiny_tower == [("ViT-B-16", "openai", "none")]
    for name in ("cwfid", "suim"):
        result = read_result(out / "sclip" / f"{name}.json")
        assert result.untrained and result.images_scored == 1
        assert result.settings["method"] == "sclip" and result.settings["stride"] == 150
        labelled = result.confusion().sum()
        assert labelled > 0  # every labelled pixel got a prediction at the original size
    table = cli("table", out, "--published", "none", "--format", "csv")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].split(",")[0] == "sclip (untrained) (synthetic data)"
    report = cli("report", out, "--out", tmp_path / "report.html", "--bootstrap", "10", "--published", "seed")
    assert report.exit_code == 0, report.output
    html = (tmp_path / "report.html").read_text()
    assert "sclip (untrained)" in html and "CAT-Seg-B" in html
