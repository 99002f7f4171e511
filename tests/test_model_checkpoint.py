"""Checkpoints: official key lists map onto our models, official-format files load exactly, and
every broken file (wrong variant, truncated, incomplete, foreign) is refused with a message that
names the problem. Downloads run against a local HTTP server; the hub through a stand-in."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import numpy as np
import pytest
import torch

import model
from model import checkpoint as ckpt
from model.aggregator import shifted_window_mask
from model import weights as weights_module
from model.configs import CATSEG_TINY
from model.weights import Weights
from model.factory import expected_shapes

from conftest import TEST_DATA

OFFICIAL_KEYS = TEST_DATA / "official_keys"  # copies of shared/parity/keys_{b,l}.json
MASK_KEY = "sem_seg_head.predictor.transformer.layers.{}.swin_block.block_2.attn_mask"


def to_official(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Our canonical state dict written the way the official code names it (test fixture maker)."""
    out = {}
    for key, value in state.items():
        for official, ours in ckpt.OFFICIAL_TO_OURS:
            if key.startswith(ours):
                key = official + key[len(ours) :]
                break
        if key.endswith(".attn.in_proj_weight"):
            for part, chunk in zip("qkv", value.chunk(3)):
                out[key.replace("in_proj_weight", f"{part}_proj_weight")] = chunk.clone()
        else:
            out[key] = value.clone()
    for layer in range(num_layers):
        out[MASK_KEY.format(layer)] = shifted_window_mask(24, 12, 6)
    return out


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return model.create_model("catseg-tiny").canonical_state_dict()


@pytest.fixture()
def official_tiny(tmp_path, tiny_state):
    """Write an official-format (detectron2) tiny checkpoint; returns (path, state dict written)."""

    def write(edit=None, wrap=True, name="model_tiny.pth"):
        state = to_official(tiny_state, CATSEG_TINY.num_layers)
        if edit:
            edit(state)
        path = tmp_path / name
        obj = {"model": state, "optimizer": {"state": {}, "param_groups": []}, "iteration": 79999} if wrap else state
        torch.save(obj, path)
        return path

    return write


@pytest.mark.parametrize("keys_file", ["keys_b.json", "keys_l.json"])
def test_key_lists_are_copies_of_the_shared_ones(shared_dir, keys_file):
    shared = json.loads((shared_dir / "parity" / keys_file).read_text())
    assert json.loads((OFFICIAL_KEYS / keys_file).read_text()) == shared


def load_error(source, name="catseg-tiny", **kwargs) -> str:
    with pytest.raises(model.CheckpointError) as info:
        model.create_model(name, checkpoint=source, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("name, keys_file, n_ours", [("catseg-b", "keys_b.json", 434), ("catseg-l", "keys_l.json", 578)])
def test_official_key_lists_map_exactly_onto_our_models(name, keys_file, n_ours):
    config = model.get_config(name)
    keys = json.loads((OFFICIAL_KEYS / keys_file).read_text())
    state = {
        k: shifted_window_mask(24, 12, 6) if k.endswith("attn_mask") else torch.empty(shape, device="meta")
        for k, shape in keys.items()
    }
    converted = ckpt.convert_official(state, config, keys_file)
    assert len(converted) == n_ours  # 484 / 652 official keys: q/k/v merged, the 2 shift masks checked
    ckpt.check_state_dict(converted, expected_shapes(config), config, keys_file, official=True)
    assert ckpt.guess_variant(converted) == name


@pytest.mark.parametrize("name, keys_file", [("catseg-b", "keys_b.json"), ("catseg-l", "keys_l.json")])
def test_export_to_the_official_layout_gives_exactly_the_official_keys_and_shapes(name, keys_file):
    from model.training.export import to_official_state_dict

    config = model.get_config(name)
    ours = {k: torch.empty(shape, device="meta") for k, shape in expected_shapes(config).items()}
    official = to_official_state_dict(ours, config)
    keys = json.loads((OFFICIAL_KEYS / keys_file).read_text())
    assert {k: list(v.shape) for k, v in official.items()} == keys


def test_export_to_the_official_layout_round_trips_through_convert_official(tiny_state):
    from model.training.export import to_official_state_dict

    official = to_official_state_dict(tiny_state, CATSEG_TINY)
    by_hand = to_official(tiny_state, CATSEG_TINY.num_layers)
    assert official.keys() == by_hand.keys()
    assert all(torch.equal(official[k], by_hand[k]) for k in by_hand)
    back = ckpt.convert_official(official, CATSEG_TINY, "exported")
    assert back.keys() == tiny_state.keys()
    assert all(torch.equal(back[k], tiny_state[k]) for k in tiny_state)


def test_official_checkpoint_loads_every_tensor_exactly(official_tiny, tiny_state):
    path = official_tiny()
    net = model.create_model("catseg-tiny", checkpoint=path)
    loaded = net.canonical_state_dict()
    assert loaded.keys() == tiny_state.keys()
    assert all(torch.equal(loaded[k], tiny_state[k]) for k in tiny_state)
    assert net.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not net.training
    # buffers recomputed after the meta-device build equal a fresh model's
    fresh = model.create_model("catseg-tiny")
    for (name, buffer), (_, expected) in zip(net.named_buffers(), fresh.named_buffers()):
        assert torch.equal(buffer, expected), name
    # a bare state dict (no detectron2 wrapper) loads the same
    bare = model.create_model("catseg-tiny", checkpoint=official_tiny(wrap=False, name="bare.pth"))
    assert torch.equal(bare.decoder.head.weight, tiny_state["decoder.head.weight"])


def test_a_checkpoint_of_another_variant_is_refused_by_name(official_tiny):
    message = load_error(official_tiny(), name="catseg-b")
    assert "holds a catseg-tiny model, not catseg-b" in message
    assert "--model catseg-tiny" in message


def test_a_truncated_checkpoint_is_refused(official_tiny):
    path = official_tiny()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "is truncated or not a PyTorch checkpoint" in load_error(path)


def test_missing_and_unexpected_keys_are_named_as_the_official_file_names_them(official_tiny):
    def edit(state):
        del state["sem_seg_head.predictor.transformer.head.bias"]
        state["sem_seg_head.predictor.transformer.extra.weight"] = torch.zeros(1)

    message = load_error(official_tiny(edit))
    assert "missing keys: sem_seg_head.predictor.transformer.head.bias" in message
    assert "unexpected keys: sem_seg_head.predictor.transformer.extra.weight" in message


def test_wrong_shapes_and_a_missing_k_projection_are_named(official_tiny):
    prefix = "sem_seg_head.predictor.clip_model.transformer.resblocks.1.attn."

    def drop_k(state):
        del state[prefix + "k_proj_weight"]

    assert f"{prefix[:-1]} lacks k_proj_weight" in load_error(official_tiny(drop_k))

    def reshape(state):
        state["upsample1.bias"] = torch.zeros(7)

    assert "wrong shapes: upsample1.bias (7,) (expected (16,))" in load_error(official_tiny(reshape, name="shape.pth"))


def test_v1_checkpoints_and_wrong_shift_masks_are_refused(official_tiny):
    def v1(state):
        state["backbone.res2.0.conv1.weight"] = torch.zeros(1)

    assert "CAT-Seg v1 (2023) checkpoint" in load_error(official_tiny(v1))

    def mask(state):
        state[MASK_KEY.format(0)] = torch.zeros(4, 144, 144)

    assert "is not the Swin shift mask" in load_error(official_tiny(mask, name="mask.pth"))


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    assert "not a PyTorch checkpoint" in load_error(junk)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    assert "holds no state dict" in load_error(listing)
    assert "does not exist" in load_error(tmp_path / "absent.pth")


class _Pickled:
    """A Python object in a checkpoint, which a weights-only load refuses."""


def test_a_checkpoint_with_python_objects_is_refused_without_torch_s_weights_only_advice(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Pickled()}, path)
    message = load_error(path)
    assert "holds Python objects besides tensors" in message and "_Pickled" in message
    assert "save a plain state dict" in message
    assert "weights_only" not in message and "\n" not in message


def test_convert_writes_safetensors_that_load_back(official_tiny, tiny_state, tmp_path, cli):
    source = official_tiny()
    out = tmp_path / "tiny.safetensors"
    result = cli("convert", source, "--model", "catseg-tiny", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        metadata = f.metadata()
    assert metadata == {"format": "catseg-bench", "model": "catseg-tiny",
                        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    net = model.create_model("catseg-tiny", checkpoint=out)
    assert all(torch.equal(net.canonical_state_dict()[k], v) for k, v in tiny_state.items())
    assert "holds a catseg-tiny model, not catseg-b" in load_error(out, name="catseg-b")
    out.write_bytes(out.read_bytes()[:1000])
    assert "truncated or not a safetensors file" in load_error(out)

    wrong = cli("convert", source, "--model", "catseg-b", "--out", tmp_path / "b.safetensors")
    assert wrong.exit_code == 1 and "holds a catseg-tiny model, not catseg-b" in wrong.output
    suffix = cli("convert", source, "--model", "catseg-tiny", "--out", tmp_path / "tiny.pth")
    assert suffix.exit_code == 1 and "must end in .safetensors" in suffix.output


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `payload`; honours `Range: bytes=N-`; the first `fail_after` bytes of a response
    are followed by a dropped connection while `drops` > 0."""

    payload = b""
    drops = 0
    fail_after = 0
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drops > 0:
            type(self).drops -= 1
            self.wfile.write(body[: self.fail_after])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_downloads_resume_and_check_their_sha256(official_tiny, http_server, tmp_path, tiny_state):
    payload = official_tiny().read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    _RangeHandler.payload, _RangeHandler.drops, _RangeHandler.fail_after, _RangeHandler.ranges = payload, 1, 5000, []
    url = f"{http_server}/weights/model_tiny.pth#sha256={digest}"
    cache = tmp_path / "cache"
    assert "run again to resume" in load_error(url, cache_dir=cache)
    net = model.create_model("catseg-tiny", checkpoint=url, cache_dir=cache)
    assert _RangeHandler.ranges == [None, "bytes=5000-"]
    assert net.checkpoint_sha256 == digest
    assert torch.equal(net.decoder.head.weight, tiny_state["decoder.head.weight"])
    # a finished download is reused without asking the server again
    model.create_model("catseg-tiny", checkpoint=url, cache_dir=cache)
    assert len(_RangeHandler.ranges) == 2

    bad = f"{http_server}/other/model_tiny.pth#sha256={'0' * 64}"
    assert "does not match the expected" in load_error(bad, cache_dir=cache)
    assert not list((cache / "downloads").glob("*/*.part"))  # a corrupt download is not kept


def test_hub_checkpoints_come_from_the_space_and_are_checked(monkeypatch, official_tiny, tmp_path):
    path = official_tiny()
    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        return str(path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    # the published B file's sha256 is enforced: our tiny stand-in does not match it
    with pytest.raises(model.CheckpointError, match="does not match the expected a201a50f"):
        ckpt.load_state("hub", model.get_config("catseg-b"), {})
    assert calls[-1] == {"repo_id": "hamacojr/CAT-Seg-weights", "repo_type": "space",
                         "filename": "model_base.pth", "cache_dir": None}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tiny = Weights("catseg-tiny", "test", "a test release", "model_tiny.pth", digest, "me/tiny", "model",
                   pixel_mean=(1.0, 2.0, 3.0), prompt_template="a {}")
    monkeypatch.setitem(weights_module.WEIGHTS, ("catseg-tiny", "test"), tiny)
    monkeypatch.setitem(weights_module.DEFAULT_TAGS, "catseg-tiny", "test")
    config = CATSEG_TINY
    state, sha, found = ckpt.load_state("hub", config, expected_shapes(config), cache_dir=tmp_path)
    assert sha == digest and found is tiny and calls[-1]["filename"] == "model_tiny.pth"
    assert calls[-1]["repo_id"] == "me/tiny" and calls[-1]["repo_type"] == "model"
    net = model.create_model("catseg-tiny", checkpoint="test", cache_dir=tmp_path)  # the tag by name
    assert net.checkpoint_sha256 == digest
    assert net.config.pixel_mean == (1.0, 2.0, 3.0) and net.config.prompt_template == "a {}"  # the tag's preprocessing
    monkeypatch.delitem(weights_module.DEFAULT_TAGS, "catseg-tiny")
    monkeypatch.delitem(weights_module.WEIGHTS, ("catseg-tiny", "test"))
    assert np.isclose(float(state["decoder.head.bias"][0]), float(torch.load(path)["model"][
        "sem_seg_head.predictor.transformer.head.bias"][0]))
    assert "has no published weights" in load_error("hub")
