"""Class names -> prompts -> CLIP token ids, and the evaluation-time text-embedding cache.

The CVPR configs use one template, 'A photo of a {} in the scene', filled with the *first
synonym* of a name written as a ', '-separated list ("sofa, couch, lounge" -> "sofa"); names are
otherwise used verbatim (the tokenizer lower-cases and collapses whitespace). open_clip's
`SimpleTokenizer` is OpenAI's BPE tokenizer with the vocabulary shipped in its wheel, so no
download is needed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
from open_clip.tokenizer import SimpleTokenizer
from torch import Tensor

if TYPE_CHECKING:
    from model.catseg import CATSeg


def first_synonym(name: str) -> str:
    return name.split(", ")[0]


def class_prompts(class_names: list[str], template: str) -> list[str]:
    return [template.format(first_synonym(name)) for name in class_names]


@functools.lru_cache(maxsize=None)
def _tokenizer(context_length: int) -> SimpleTokenizer:
    return SimpleTokenizer(context_length=context_length)


def tokenize(prompts: list[str], context_length: int) -> Tensor:
    """(T, context_length) int64 token ids: start, BPE tokens, end, zero padding."""
    return _tokenizer(context_length)(prompts)


@torch.no_grad()
def encode_classes(model: CATSeg, class_names: list[str]) -> Tensor:
    """L2-normalised text embeddings (T, C) of a class list, computed once per model and list.

    The cache lives on the model instance, so it is specific to its variant and weights; it is
    emptied whenever the model enters training mode (its text encoder may change there).
    """
    key = tuple(class_names)
    cached = model.text_cache.get(key)
    if cached is None:
        cached = model.text_embeddings(list(class_names))
        model.text_cache[key] = cached
    return cached
