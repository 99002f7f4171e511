"""Writing files so that no reader ever sees half of one, with the permissions the umask asks for."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

HASH_CHUNK = 1 << 20
_UMASK_LOCK = threading.Lock()


def user_path(value: str | os.PathLike) -> Path:
    """A path as a user gave it, with ``~`` and ``$VARS`` expanded: what a shell does for a bare
    word but not for ``--output=~/x``, a quoted value, an API argument or a config field. Every
    path a user gives goes through here (the CLI's path options all do, see `catseg_bench.cli`)."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(value))))


def current_umask() -> int:
    """The process umask (reading it means setting it, so the set-and-restore pair is locked)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Have `write(tmp)` fill a temp file beside `path`, then move it over `path`.

    Readers see the old file or the whole new one. The file gets the mode a plain `open()` would
    give it (0o666 minus the umask: 0644 under umask 022), not mkstemp's private 0600. A failed
    write leaves no temp file behind; a killed one leaves a hidden `.<name>.*.tmp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:
            out.write(data)

    atomic_write(path, write)


def atomic_write_json(path: Path, content: dict) -> None:
    """`content` as indented, key-sorted JSON with a final newline, written atomically."""
    atomic_write_bytes(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
