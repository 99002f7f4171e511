"""Checks shared by the MaskFormer-family segmenter tests (ZSSeg, OVSeg, ZegFormer; each registered
name monkeypatched to its tiny config at short side 64): a seeded untrained segmenter on one image,
and `bench run --checkpoint none` on a synthetic suite plus the models list's weights licence.
Each test keeps its own assertions on the settings the helpers return."""

from __future__ import annotations

import json

import numpy as np
import torch

from catseg_bench import registry
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

SETS = ("deepcrack", "cwfid")


def check_untrained_segmenter(segmenter_class, name: str, classes: tuple[str, ...] = ("sky", "tree", "road")) -> dict:
    """Seeded untrained `name` (seed 3) segments a 40 x 30 image (resized to 85 x 64): labels are
    the argmax of the scores and the seed fixes the weights. Returns its settings."""
    seg = segmenter_class(name, checkpoint="none", seed=3)
    assert seg.untrained and seg.checkpoint_sha256 is None
    seg.set_classes(classes)
    original = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    image = seg.prepare_image(original)
    assert image.shape == (85, 64, 3)
    labels = seg.predict([image], [(40, 30)])[0]
    scores = seg.predict_scores([image], [(40, 30)])[0]
    assert labels.shape == (40, 30) and labels.dtype == torch.int64 and scores.shape == (len(classes), 40, 30)
    assert torch.equal(labels, scores.argmax(dim=0))
    again = segmenter_class(name, checkpoint="none", seed=3)
    again.set_classes(classes)
    assert torch.equal(again.predict([image], [(40, 30)])[0], labels)  # seeded weights
    return seg.settings()


def check_bench_run_on_synthetic_sets(cli, tmp_path, name: str, licence: str) -> list[dict]:
    """`bench run --model name --checkpoint none` on one synthetic image of each of SETS scores
    both (untrained, non-empty confusion); the registry and `models list --json` give the one
    "official" tag with `licence`. Returns each set's result settings."""
    specs = load_specs()
    data, out = tmp_path / "synth", tmp_path / "runs"
    write_suite(data, [specs[s] for s in SETS], images_per_set=1, seed=0)
    ran = cli("run", "--model", name, "--checkpoint", "none", "--datasets", ",".join(SETS),
              "--data-root", data, "--output", out, "--workers", "0", "--published", "none")
    assert ran.exit_code == 0, ran.output
    settings = []
    for set_name in SETS:
        result = read_result(out / name / f"{set_name}.json")
        assert result.untrained and result.images_scored == 1 and result.confusion().sum() > 0
        settings.append(result.settings)
    entries = registry.available_segmenters()
    assert entries[name].weights() == ["official"] and entries[name].source == "built-in"
    listed = cli("models", "list", "--json")
    [row] = [row for row in json.loads(listed.output) if row["name"] == name]
    assert row["weights"] == ["official"] and row["weights_licences"] == {"official": licence}
    return settings
