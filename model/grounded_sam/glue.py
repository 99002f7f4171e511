"""The MESS fork's glue: class names -> captions, detections -> classes, box masks -> a semantic map.

Plain Python and torch, no detector or SAM code: each rule below is what the fork ran, with its
source (README, "Grounded-SAM"). The fork is `blumenstiel/Grounded-SAM-MESS@90a4872`
(`model/grounded_sam_model.py`, "fork:LINE" below); it installed the unpinned pip package
`groundingdino-py`, whose only release 0.4.0 is `IDEA-Research/GroundingDINO@31aa788` minus the CUDA
op ("gdino:FILE:LINE" below is that commit).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

BOX_THRESHOLD = 0.3  # fork:111 (predict_gdino's default)
TEXT_THRESHOLD = 0.25  # fork:111
CLASS_BATCH = 50  # fork:112-115: more than 50 class names are sent 50 at a time
CAPTION_SEPARATOR = ". "  # gdino:util/inference.py:192 (`". ".join(classes)`)
# fork:79-90: a set's background class when its metadata names none (every MESS set names one).
BACKGROUND_NAMES = ("background", "Background", "others", "Others")


def class_batches(class_names: Sequence[str], size: int = CLASS_BATCH) -> list[list[str]]:
    """The name lists sent to the detector one caption each; only a vocabulary of more than `size`
    names is split (fork:112), so 50 names are one caption and 51 are two (50 + 1)."""
    names = list(class_names)
    if len(names) <= size:
        return [names]
    return [names[i : i + size] for i in range(0, len(names), size)]


def caption(class_names: Sequence[str]) -> str:
    """The detector's caption for one batch: names joined by ". ", lower-cased, stripped, ending in "."
    (gdino:util/inference.py:192 and `preprocess_caption`, lines 21-25)."""
    text = CAPTION_SEPARATOR.join(class_names).lower().strip()
    return text if text.endswith(".") else text + "."


def decode_tokens(tokens: Sequence[str]) -> str:
    """BERT `tokenizer.decode` of these tokens as the 2023 fast tokenizer did it: WordPiece pieces
    ("##x") glued to the previous token, everything else space-separated, special tokens kept, then
    `clean_up_tokenization` (clean_up_tokenization_spaces was True by default)."""
    text = ""
    for index, token in enumerate(tokens):
        if index == 0:
            text = token
        elif token.startswith("##"):
            text += token[2:]
        else:
            text += " " + token
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def phrase(token_probs: Tensor, tokens: Sequence[str], text_threshold: float = TEXT_THRESHOLD) -> str:
    """One box's phrase: every caption token whose probability exceeds the text threshold, decoded,
    with the dots removed (gdino:util/inference.py:76-80 and util/utils.py:599-606). At 31aa788 no
    position is masked, so [CLS], [SEP] and the "." separators count like words."""
    picked = [tokens[i] for i in (token_probs > text_threshold).nonzero(as_tuple=True)[0].tolist()]
    return decode_tokens(picked).replace(".", "")


def phrase_class(text: str, class_names: Sequence[str]) -> int | None:
    """The class a phrase names: the index of the class name it equals exactly, else None
    (gdino:util/inference.py:237-244, `classes.index(phrase)`). Class names are compared as given,
    so a name with capitals or with a space before punctuation never matches the lower-cased,
    decoded phrase."""
    try:
        return list(class_names).index(text)
    except ValueError:
        return None


def select_boxes(probs: Tensor, box_threshold: float = BOX_THRESHOLD) -> Tensor:
    """The queries kept: those whose best token probability exceeds the box threshold
    (gdino:util/inference.py:71)."""
    return probs.max(dim=1).values > box_threshold


def boxes_to_pixels(boxes_cxcywh: Tensor, height: int, width: int) -> Tensor:
    """Normalised (cx, cy, w, h) -> pixel (x1, y1, x2, y2) in float32, as `post_process_result`
    (gdino:util/inference.py:231-233, torchvision `box_convert`)."""
    boxes = boxes_cxcywh * torch.tensor([width, height, width, height], dtype=torch.float32)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def background_channel(background: int | None, num_classes: int) -> int:
    """Where boxes without a class and pixels without a positive score go: the set's background
    class, or for a set without one (MESS's background_class 255) the extra channel `num_classes`,
    which is dropped before the arg-max (fork:70-72, 137-139, 179, 188)."""
    if background is None or background > num_classes:
        return num_classes
    return background


def fallback_background(class_names: Sequence[str]) -> int:
    """The fork's background class for a vocabulary whose set names none (fork:79-90): the first of
    'background', 'Background', 'others', 'Others' that is a class name, else class 0."""
    for name in BACKGROUND_NAMES:
        if name in class_names:
            return list(class_names).index(name)
    return 0


class ClassScores:
    """The per-class score map of one image, accumulated box by box (fork:165-179).

    Each box's SAM mask logits times its box confidence; a class's score is the maximum over its
    boxes; boxes without a class count for the background channel; classes without a box score 0.
    Boxes may come in any number of chunks: the maximum is exact, so the map equals the fork's
    all-boxes-at-once one.
    """

    def __init__(self, num_classes: int, background: int | None, size: tuple[int, int], device=None):
        self.num_classes = num_classes
        self.background = background_channel(background, num_classes)
        self.scores = torch.full((num_classes + 1, *size), float("-inf"), device=device)
        self.seen = torch.zeros(num_classes + 1, dtype=torch.bool)

    def add(self, mask_logits: Tensor, confidences: Tensor, class_ids: Sequence[int | None]) -> None:
        """mask_logits (n, H, W), confidences (n,), one class index or None per box."""
        weighted = mask_logits.float() * confidences.float().to(mask_logits.device)[:, None, None]
        channels = torch.tensor([self.background if c is None else c for c in class_ids], dtype=torch.long)
        for channel in channels.unique().tolist():
            best = weighted[(channels == channel).to(weighted.device)].amax(dim=0)
            torch.maximum(self.scores[channel], best, out=self.scores[channel])
            self.seen[channel] = True

    def by_class(self) -> Tensor:
        """(num_classes + 1, H, W): the per-class maxima so far, classes without a box 0 (fork:171-176)."""
        scores = self.scores.clone()
        scores[~self.seen.to(scores.device)] = 0.0
        return scores

    def finish(self) -> Tensor:
        """`by_class`, then every pixel whose best score is 0 or below set to 1 in the background
        channel (fork:179)."""
        scores = self.by_class()
        scores[self.background, scores.max(dim=0).values <= 0] = 1.0
        return scores


def semantic_labels(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """Class indices at the original size: the score map resized bilinearly (detectron2
    `sem_seg_postprocess`, fork:184), the extra channel dropped (fork:188), arg-max over classes
    (detectron2 `SemSegEvaluator.process`); ties go to the lowest index."""
    from model.inference import upsampled_argmax

    return upsampled_argmax(scores[:-1], size)
