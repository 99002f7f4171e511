"""The model-agnostic sliding-window helper (model/sliding.py), checked by hand."""

from __future__ import annotations

import pytest
import torch

from model.sliding import slide_logits, window_boxes, window_starts


def test_window_starts_follow_mmseg():
    # ceil((450 - 224) / 112) + 1 = 4 windows; the 4th would end at 560, so it is moved back to 226.
    assert window_starts(450, 224, 112) == [0, 112, 224, 226]
    assert window_starts(336, 224, 112) == [0, 112]
    assert window_starts(224, 224, 112) == [0]
    assert window_starts(100, 224, 112) == [0]  # smaller than the crop: one smaller window
    with pytest.raises(ValueError, match="positive"):
        window_starts(100, 0, 112)


def test_window_boxes_clip_to_the_image():
    assert window_boxes(100, 300, (224, 224), (112, 112)) == [(0, 100, 0, 224), (0, 100, 76, 300)]


def test_overlaps_are_averaged():
    image = torch.zeros(1, 1, 4, 6)
    calls = []

    def segment(window):
        calls.append(tuple(window.shape[-2:]))
        return torch.full((1, 1, *window.shape[-2:]), float(len(calls)))

    logits = slide_logits(image, segment, crop=4, stride=2)
    assert calls == [(4, 4), (4, 4)]  # x = 0 and x = 2
    assert logits[0, 0, 0].tolist() == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0]


def test_pixelwise_segmenter_is_unchanged_by_windows():
    image = torch.arange(2 * 3 * 7 * 9, dtype=torch.float32).reshape(2, 3, 7, 9)
    logits = slide_logits(image, lambda window: window * 2, crop=(4, 5), stride=(2, 3))
    torch.testing.assert_close(logits, image * 2, rtol=0, atol=0)


def test_global_view_is_averaged_one_to_one():
    image = torch.zeros(1, 1, 6, 6)
    shapes = []

    def segment(window):
        shapes.append(tuple(window.shape[-2:]))
        value = 6.0 if len(shapes) == 5 else 2.0  # four windows, then the global view
        return torch.full((1, 2, *window.shape[-2:]), value)

    logits = slide_logits(image, segment, crop=3, stride=3, global_view=True)
    assert shapes == [(3, 3)] * 5  # the whole image is resized to the crop size
    assert logits.shape == (1, 2, 6, 6) and torch.all(logits == 4.0)


def test_the_api_reexports_the_helper_for_plugins():
    from catseg_bench import api
    from model import sliding

    assert api.slide_logits is sliding.slide_logits and api.window_boxes is sliding.window_boxes
