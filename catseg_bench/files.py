"""Writing files so that no reader ever sees half of one, and reading our small JSON marker files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from catseg_bench.errors import BenchError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, content: dict) -> None:
    atomic_write_bytes(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode("utf-8"))


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
