"""Training inputs and outputs: CLIP initialisation, the data stream, checkpoints, export, specs, evaluation."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from model import CheckpointError, create_model, get_config
from model.clip_towers import build_clip
from model.configs import CATSEG_TINY
from model.training import clip_init
from model.training.augment import AugmentConfig
from model.training.data import AugmentedStream, StreamSampler, TrainingDataError
from model.training.state import (
    capture_rng,
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    remove_partial_writes,
    restore_rng,
)
from model.training.synthetic import SyntheticScenes


def _reference_clip(seed: int):
    torch.manual_seed(seed)
    return build_clip(CATSEG_TINY)


# ------------------------------------------------------------------------------------ CLIP init
def test_clip_weights_load_from_a_state_dict_file_cast_to_fp32(tmp_path):
    reference = _reference_clip(1).half()  # OpenAI ships fp16 weights
    path = tmp_path / "clip.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    net = create_model("catseg-tiny")
    origin = clip_init.load_clip_weights(net, "catseg-tiny", path)
    assert str(path) in origin and "sha256" in origin
    for key, value in reference.state_dict().items():
        assert net.clip.state_dict()[key].dtype == torch.float32
        torch.testing.assert_close(net.clip.state_dict()[key], value.float(), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_clip_weights_load_from_an_openai_style_torchscript_archive(tmp_path):
    reference = _reference_clip(2).eval()
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.script(reference), str(path))
    net = create_model("catseg-tiny")
    clip_init.load_clip_weights(net, "catseg-tiny", path)
    for key, value in reference.state_dict().items():
        assert torch.equal(net.clip.state_dict()[key], value)


def test_clip_weights_of_another_architecture_are_refused(tmp_path):
    state = _reference_clip(0).state_dict()
    state["visual.proj"] = torch.zeros(3, 3)
    del state["ln_final.weight"]
    path = tmp_path / "other.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing: ln_final.weight; wrong shape: visual.proj"):
        clip_init.load_clip_weights(create_model("catseg-tiny"), "catseg-tiny", path)
    with pytest.raises(CheckpointError, match="do not exist"):
        clip_init.load_clip_weights(create_model("catseg-tiny"), "catseg-tiny", tmp_path / "absent.pt")


def test_openai_tag_goes_through_open_clip_create_model(monkeypatch):
    import open_clip

    calls = []

    def fake_create_model(arch, pretrained=None, cache_dir=None):
        calls.append((arch, pretrained))
        return _reference_clip(4)

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    tiny = dataclasses.replace(get_config("catseg-tiny"), openai_clip="tiny-arch")
    monkeypatch.setattr(clip_init, "get_config", lambda name: tiny if name == "catseg-tiny" else get_config(name))
    net = create_model("catseg-tiny")
    assert clip_init.load_clip_weights(net, "catseg-tiny", "openai") == "open_clip tiny-arch 'openai'"
    assert calls == [("tiny-arch", "openai")]
    assert torch.equal(net.clip.state_dict()["visual.conv1.weight"], _reference_clip(4).state_dict()["visual.conv1.weight"])
    assert get_config("catseg-b").openai_clip == "ViT-B-16" and get_config("catseg-l").openai_clip == "ViT-L-14-336"

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(CheckpointError, match="could not fetch the OpenAI CLIP tiny-arch weights .*pass the file instead"):
        clip_init.load_clip_weights(net, "catseg-tiny", "openai")


# ---------------------------------------------------------------------------------- the stream
def test_sampler_splits_each_global_batch_across_ranks_from_the_start_step():
    assert list(StreamSampler(0, 2, 4)) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert list(StreamSampler(1, 3, 4, rank=1, world_size=2)) == [6, 7, 10, 11]
    assert len(StreamSampler(1, 3, 4, rank=1, world_size=2)) == 4
    with pytest.raises(ValueError, match="not divisible"):
        StreamSampler(0, 1, 3, rank=0, world_size=2)


def test_stream_visits_every_image_once_per_epoch_and_repeats_samples_exactly():
    scenes = SyntheticScenes(5, seed=0, size=48, num_classes=2)
    stream = AugmentedStream(scenes, AugmentConfig(), 2, seed=7)
    epoch0 = [stream.sample_index(p) for p in range(5)]
    epoch1 = [stream.sample_index(p) for p in range(5, 10)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(5)) and epoch0 != epoch1
    image, label = stream[3]
    again_image, again_label = AugmentedStream(scenes, AugmentConfig(), 2, seed=7)[3]
    assert image.shape == (3, 384, 384) and image.dtype == torch.uint8 and label.dtype == torch.int64
    assert torch.equal(image, again_image) and torch.equal(label, again_label)
    other_image, _ = AugmentedStream(scenes, AugmentConfig(), 2, seed=8)[3]
    assert not torch.equal(image, other_image)


def test_stream_refuses_labels_outside_the_classes():
    scenes = SyntheticScenes(2, seed=0, size=48, num_classes=4)  # labels up to 3
    stream = AugmentedStream(scenes, AugmentConfig(), 2, seed=0)
    bad = next(p for p in range(2) if (scenes.read_label(stream.sample_index(p)) % 255 > 1).any())
    with pytest.raises(TrainingDataError, match="neither train IDs 0..1 nor ignore 255"):
        stream[bad]


# --------------------------------------------------------------------------------- checkpoints
def test_rng_capture_and_restore_round_trip():
    state = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_prune_keeps_the_newest_checkpoints(tmp_path):
    for step in (5, 10, 15):
        checkpoint_path(tmp_path, step).parent.mkdir(exist_ok=True)
        checkpoint_path(tmp_path, step).write_bytes(b"x")
    (tmp_path / "checkpoints" / "step_0000020.pt.abc.tmp").write_bytes(b"half")  # never counted
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 15]
    remove_partial_writes(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000010.pt", "step_0000015.pt"]


# -------------------------------------------------------------------------------------- export
def test_export_official_round_trips_through_the_official_loader(cli, tmp_path):
    from model.checkpoint import is_official, read_state_dict
    from model.checkpoint import save_safetensors

    torch.manual_seed(5)
    net = create_model("catseg-tiny")
    ours = tmp_path / "ours.safetensors"
    save_safetensors(net.canonical_state_dict(), net.config, ours, None)
    out = tmp_path / "official.pth"
    result = cli("export-official", str(ours), "--model", "catseg-tiny", "--out", str(out))
    assert result.exit_code == 0, result.output
    state, _ = read_state_dict(out)
    assert is_official(state)
    assert "sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.q_proj_weight" in state
    assert "sem_seg_head.predictor.transformer.layers.1.swin_block.block_2.attn_mask" in state
    assert not any("in_proj_weight" in k for k in state)
    reloaded = create_model("catseg-tiny", checkpoint=out).canonical_state_dict()
    for key, value in net.canonical_state_dict().items():
        assert torch.equal(reloaded[key], value), key


# --------------------------------------------------------------------------------------- specs
def test_coco_stuff_training_spec_matches_the_official_class_list():
    from catseg_bench.specs import load_specs
    from catseg_bench.training import load_training_spec

    spec = load_training_spec("coco_stuff_171")
    assert spec.num_classes == 171 and spec.ignore_index == 255
    assert spec.class_names[:3] == ("person", "bicycle", "car")
    assert spec.class_names[79:82] == ("toothbrush", "banner", "blanket")
    assert spec.class_names[-3:] == ("window-blind", "window-other", "wood")
    assert "building-other" in spec.class_names and "wall-brick" in spec.class_names
    source_ids = spec.prepare["options"]["source_ids"]
    assert spec.prepare["recipe"] == "coco_stuff_171"
    assert len(source_ids) == 171 and source_ids == sorted(set(source_ids)) and source_ids[-1] == 181
    assert not {11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90} & set(source_ids)
    assert "coco_stuff_171" not in load_specs()  # the default spec list stays the 22 MESS datasets
