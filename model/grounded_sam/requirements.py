"""The optional `transformers` dependency of Grounded-SAM, imported only when a model is built."""

from __future__ import annotations

# No package index serves catseg-bench yet: name the package itself, and the extra for a clone.
INSTALL_HINT = 'pip install "transformers>=4.40" (the "grounded-sam" extra; from a clone: pip install -e ".[grounded-sam]")'


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message is the one line that says how to get it."""


def require_transformers():
    """The `transformers` module, or a MissingExtraError naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise MissingExtraError(
            f"Grounded-SAM runs GroundingDINO and SAM through Hugging Face transformers, which is not installed: {INSTALL_HINT}"
        ) from None
    for name in ("GroundingDinoForObjectDetection", "SamModel"):
        if not hasattr(transformers, name):
            raise MissingExtraError(
                f"transformers {transformers.__version__} has no {name}: upgrade it: {INSTALL_HINT}"
            )
    return transformers
