"""Class names -> prompts -> CLIP token ids (the evaluation-time embedding cache is
`model.catseg.encode_classes`).

The CVPR configs use one template, 'A photo of a {} in the scene', filled with the *first
synonym* of a name written as a ', '-separated list ("sofa, couch, lounge" -> "sofa"); names are
otherwise used verbatim (the tokenizer lower-cases and collapses whitespace). open_clip's
`SimpleTokenizer` is OpenAI's BPE tokenizer with the vocabulary shipped in its wheel, so no
download is needed.
"""

from __future__ import annotations

import functools

from open_clip.tokenizer import SimpleTokenizer
from torch import Tensor


def first_synonym(name: str) -> str:
    return name.split(", ")[0]


def class_prompts(class_names: list[str], template: str) -> list[str]:
    return [template.format(first_synonym(name)) for name in class_names]


@functools.lru_cache(maxsize=None)
def _tokenizer(context_length: int) -> SimpleTokenizer:
    return SimpleTokenizer(context_length=context_length)


@functools.lru_cache(maxsize=None)
def tokenizer_of(architecture: str):
    """open_clip's own tokenizer of an architecture (SigLIP: a sentencepiece model that open_clip
    fetches from the Hugging Face Hub on first use)."""
    import open_clip

    return open_clip.get_tokenizer(architecture)


def tokenize(prompts: list[str], context_length: int) -> Tensor:
    """(T, context_length) int64 token ids: start, BPE tokens, end, zero padding."""
    return _tokenizer(context_length)(prompts)
