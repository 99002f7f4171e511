"""One resumable HTTP download: `<name>.part` continued with a `Range` request, sha256-checked.

Standard library only. `model.checkpoint` fetches checkpoint URLs through `download`; `bench
prepare` adds its mirror and Google Drive handling on top of `fetch_resumable` and `check_sha256`.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from http.client import HTTPException, IncompleteRead
from pathlib import Path
from typing import Callable

from model.common.files import sha256_file

CHUNK = 1 << 20
RESUME_HINT = "run again to resume"
FATAL_HTTP = (401, 403, 404, 410)  # retrying will not help

Progress = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) while a file downloads."""
Opener = Callable[[str, int], object]
"""Opens a URL asking for the bytes from an offset on; returns an `urlopen`-like response."""


class DownloadError(Exception):
    """A download that failed: the message names the URL, what was kept and what to do.

    `status` is the HTTP status when the server refused the file (None for a dropped connection or a
    wrong digest).
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def open_url(url: str, offset: int = 0, timeout: float = 60.0, user_agent: str | None = None):
    """`urlopen(url)`, asking for the bytes from `offset` on when it is not 0."""
    request = urllib.request.Request(url, headers={"User-Agent": user_agent} if user_agent else {})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def check_sha256(path: Path, expected: str | None, origin: str, digest: str | None = None) -> str:
    """The file's sha256 (`digest` when already known); a DownloadError when it is not `expected`."""
    actual = digest or sha256_file(path)
    if expected and actual != expected.lower():
        raise DownloadError(
            f"{origin}: sha256 {actual} does not match the expected {expected}; the file is corrupt or not the "
            "published one"
        )
    return actual


def _total_size(response, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        tail = content_range.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _append_response(url: str, part: Path, opener: Opener, progress: Progress | None,
                     inspect: Callable[[object], None] | None) -> None:
    """One request: append to `part` from its current size (or restart it) until the body ends."""
    offset = part.stat().st_size if part.is_file() else 0
    with opener(url, offset) as response:
        if inspect is not None:
            inspect(response)
        if offset and response.status != 206:
            offset = 0  # the server ignored the range: start over
        total = _total_size(response, offset)
        done = offset
        with part.open("ab" if offset else "wb") as handle:
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise IncompleteRead(b"", total - done)


def fetch_resumable(
    url: str,
    part: Path,
    opener: Opener = open_url,
    retries: int = 0,
    retry_wait: float = 2.0,
    progress: Progress | None = None,
    inspect: Callable[[object], None] | None = None,
    resume_hint: str = RESUME_HINT,
) -> None:
    """Fill `part` with the body of `url`, continuing from the bytes it already holds.

    Dropped connections are retried `retries` times from where they stopped; after that the
    DownloadError says that `part` keeps what arrived and ends with `resume_hint`. `inspect(response)`
    sees each response before its body is read and may raise to refuse it (a web page in place of a
    file). An HTTP 416 on a resumed request means `part` is already complete.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        try:
            _append_response(url, part, opener, progress, inspect)
            return
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.is_file():
                return
            if err.code in FATAL_HTTP:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}", status=err.code) from None
            failure = f"HTTP {err.code} {err.reason}"
        except (urllib.error.URLError, HTTPException, OSError) as err:
            failure = str(err) or type(err).__name__
        failures += 1
        if failures > retries:
            have = part.stat().st_size if part.is_file() else 0
            raise DownloadError(
                f"{url}: download interrupted ({failure}) after {failures} tries; {part} keeps the {have} bytes "
                f"that arrived: {resume_hint}"
            )
        time.sleep(retry_wait * failures)


def download(url: str, dest: Path, sha256: str | None = None, opener: Opener = open_url, retries: int = 0,
             retry_wait: float = 2.0, progress: Progress | None = None, resume_hint: str = RESUME_HINT) -> str:
    """Fetch `url` to `dest` through `dest.part` (resumable), check its sha256, move it into place.

    Returns the file's sha256. A wrong digest deletes the `.part` file, so the next try starts over.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    fetch_resumable(url, part, opener, retries, retry_wait, progress, resume_hint=resume_hint)
    try:
        digest = check_sha256(part, sha256, url)
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, dest)
    return digest
