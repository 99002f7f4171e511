"""Prompt template sets of the training-free methods, by id.

* `openai_imagenet`: the 80 ImageNet templates of the CLIP paper, as open_clip ships them
  (`OPENAI_IMAGENET_TEMPLATES`). SCLIP, ClearCLIP and NACLIP use this list, in this order.
* `maskclip`: MaskCLIP's prompt-engineering list: the same 80, then five scene templates.

Each class embedding is the mean of the L2-normalised prompt embeddings, normalised again.
"""

from __future__ import annotations

import hashlib

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

_SCENE_TEMPLATES = (
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)


def _openai_imagenet() -> tuple[str, ...]:
    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


def template_set(template_id: str) -> tuple[str, ...]:
    """The templates (with one `{}` for the class name) of a template set."""
    if template_id == "openai_imagenet":
        return _openai_imagenet()
    if template_id == "maskclip":
        return _openai_imagenet() + _SCENE_TEMPLATES
    raise ValueError(f"unknown template set {template_id!r}; choose openai_imagenet or maskclip")


def templates_sha256(templates: tuple[str, ...]) -> str:
    """A short fingerprint of the exact template strings, in order (for result settings)."""
    return hashlib.sha256("\n".join(templates).encode("utf-8")).hexdigest()[:16]
