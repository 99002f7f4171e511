"""The official recipe's loss, parameter groups, schedule and clipping, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model import create_model
from model.training.loss import one_hot_targets, segmentation_loss
from model.training.optim import (
    NORM_TYPES,
    OptimConfig,
    build_optimizer,
    build_scheduler,
    clip_gradients,
    cosine_factor,
    param_groups,
)


def test_one_hot_targets_give_ignore_pixels_an_all_zero_row():
    labels = torch.tensor([[[0, 2], [255, 1]]])
    targets = one_hot_targets(labels, 3, 255)
    assert targets.shape == (1, 3, 2, 2)
    assert targets[0, :, 0, 0].tolist() == [1, 0, 0]
    assert targets[0, :, 0, 1].tolist() == [0, 0, 1]
    assert targets[0, :, 1, 0].tolist() == [0, 0, 0]
    assert targets[0, :, 1, 1].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="label values \\[3\\]"):
        one_hot_targets(torch.tensor([[[3]]]), 3, 255)


def test_loss_upsamples_then_averages_over_every_element_including_ignore_rows():
    # constant logits upsample to constants: class 0 logit 2, class 1 logit -1, at 2x2
    logits = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    labels = torch.tensor([[[0, 1], [255, 0]]])

    def bce(x, y):
        return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))

    # class 0 targets: 1, 0, 0, 1; class 1 targets: 0, 1, 0, 0 (the ignore pixel is negative for both)
    expected = (2 * bce(2, 1) + 2 * bce(2, 0) + 1 * bce(-1, 1) + 3 * bce(-1, 0)) / 8
    assert segmentation_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # zero logits: log 2 whatever the targets
    assert segmentation_loss(torch.zeros(2, 3, 4, 4), torch.randint(0, 3, (2, 16, 16))).item() == pytest.approx(math.log(2))
    # bilinear, align_corners=False upsampling of non-constant logits
    ramp = torch.tensor([[0.0, 4.0]]).view(1, 1, 1, 2)
    labels = torch.zeros(1, 2, 4, dtype=torch.long)
    up = F.interpolate(ramp, size=(2, 4), mode="bilinear", align_corners=False)
    assert segmentation_loss(ramp, labels).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(up, torch.ones_like(up)).item()
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = create_model("catseg-tiny")
    net.freeze_for_finetuning()
    return net


def test_parameter_groups_train_exactly_clip_q_and_v_at_one_hundredth_of_the_rate(tiny):
    config = OptimConfig()
    groups = param_groups(tiny, tiny.clip, config)
    by_name = {g["name"]: g for g in groups}
    assert len(by_name) == len(groups)  # one group per tensor, no duplicates

    blocks = [f"clip.visual.transformer.resblocks.{i}.attn" for i in range(tiny.config.vision.layers)]
    blocks += [f"clip.transformer.resblocks.{i}.attn" for i in range(tiny.config.text.layers)]
    expected_clip = {f"{b}.parametrizations.in_proj_weight.original{part}" for b in blocks for part in (0, 2)}
    clip_groups = {name for name in by_name if name.startswith("clip.")}
    assert clip_groups == expected_clip  # q (original0) and v (original2) of every block of both towers
    for name in clip_groups:
        assert by_name[name]["lr"] == pytest.approx(2e-6)
        assert by_name[name]["weight_decay"] == pytest.approx(1e-4)

    frozen = {n for n, p in tiny.clip.named_parameters() if not p.requires_grad}
    assert all(n.endswith("original1") or "parametrizations" not in n for n in frozen)  # k stays frozen
    assert sum(1 for n in frozen if n.endswith("original1")) == len(blocks)
    assert {f"clip.{n}" for n, p in tiny.clip.named_parameters() if p.requires_grad} == expected_clip

    others = {n for n, p in tiny.named_parameters() if not n.startswith("clip.")}
    assert others == set(by_name) - clip_groups  # every new-module tensor trains ...
    assert all(by_name[n]["lr"] == pytest.approx(2e-4) for n in others)  # ... at the base rate

    norm_params = {
        f"{module_name}.{param_name}"
        for module_name, module in tiny.named_modules()
        if isinstance(module, NORM_TYPES) and not module_name.startswith("clip.")
        for param_name, _ in module.named_parameters(recurse=False)
    }
    assert norm_params and norm_params <= others
    for name in others:
        assert by_name[name]["weight_decay"] == (0.0 if name in norm_params else pytest.approx(1e-4)), name


def test_optimizer_is_adamw_with_default_betas(tiny):
    optimizer = build_optimizer(tiny, tiny.clip, OptimConfig())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert all(g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 for g in optimizer.param_groups)


def test_cosine_schedule_runs_from_base_rate_to_zero_without_warmup():
    assert cosine_factor(0, 100) == 1.0
    assert cosine_factor(50, 100) == pytest.approx(0.5)
    assert cosine_factor(25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_factor(100, 100) == pytest.approx(0.0)
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": 2e-4}, {"params": [nn.Parameter(torch.zeros(1))], "lr": 2e-6}])
    scheduler = build_scheduler(optimizer, 4)
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert [s[0] for s in seen] == pytest.approx([2e-4 * cosine_factor(i, 4) for i in range(4)])
    assert [s[1] for s in seen] == pytest.approx([2e-6 * cosine_factor(i, 4) for i in range(4)])


def test_full_model_clipping_scales_all_gradients_to_norm_0_01():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = clip_gradients(optimizer, 0.01)
    assert norm.item() == pytest.approx(5.0)
    assert torch.cat([a.grad, b.grad]).norm().item() == pytest.approx(0.01, rel=1e-4)
    assert (a.grad[0] / b.grad[0]).item() == pytest.approx(0.75)
