"""Reading our small JSON marker files (atomic writes live in `model.common.files`)."""

from __future__ import annotations

import json
from pathlib import Path

from catseg_bench.errors import BenchError


def read_marker(path: Path, file_format: str, what: str, fix: str) -> dict | None:
    """A JSON file whose `format` field says it is ours (an export marker, a synthetic-suite manifest).

    None when `path` does not exist; a BenchError naming the file and `fix` when it is unreadable or
    of another format.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchError(f"{path}: unreadable {what} ({err}); {fix}") from None
    if not isinstance(content, dict) or content.get("format") != file_format:
        raise BenchError(f"{path}: not a catseg-bench {what}; {fix}")
    return content
