"""Fetching source files: HTTP with resume, sha256, Google Drive, mirrors.

Every source is named by one URL, as written in a spec's ``[prepare].files``:

- a plain file: ``https://host/path`` (git-hosted data uses GitHub's archive or raw URLs, which are
  plain files too);
- a Google Drive file: ``https://drive.google.com/file/d/<ID>``;
- a Google Drive folder: ``https://drive.google.com/drive/folders/<ID>``.

**Mirror mapping.** With a mirror root ``M`` (``--mirror`` or ``CATSEG_BENCH_MIRROR``) the URL
``scheme://host/path?query`` is fetched from ``M/host/path?query``: the host becomes the first
folder under the mirror root and the path (still percent-encoded) follows unchanged; a query string,
if any, is passed on as is. A Drive file therefore lives at ``M/drive.google.com/file/d/<ID>`` and
a Drive folder is the directory ``M/drive.google.com/drive/folders/<ID>/``, served with an index
page (``python -m http.server``, nginx ``autoindex``, Apache ``Indexes``) that lists its files and
sub-folders. Anything a server answers in place of a file (Drive's "cannot scan for viruses"
page) is handled the same way with or without a mirror; absolute links in such a page are mapped
through the mirror too.

Downloads go to ``<name>.part`` first and continue from its size with an HTTP ``Range`` request
(a server that ignores the range restarts the file). A file is accepted only when its sha256
matches the spec's.
A verified file gets a ``<name>.sha256`` note beside it, so reruns do not hash it again. A digest
is reported through ``on_unknown`` (for the caller to print once the file proved usable).
"""

from __future__ import annotations

import html
import os
import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from catseg_bench.errors import BenchError
from model.common.download import DownloadError, Progress, check_sha256, fetch_resumable, open_url
from model.common.files import atomic_write_bytes

MIRROR_ENV = "CATSEG_BENCH_MIRROR"
DEFAULT_DOWNLOADS = ".bench-downloads"  # under the data root, unless --download-dir says otherwise
MAX_DRIVE_HOPS = 3  # Drive's confirmation pages followed before giving up
USER_AGENT = "catseg-bench-prepare/0.1 (+https://github.com/blumenstiel/MESS datasets)"

_DRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
_DRIVE_FILE = re.compile(r"^https://drive\.google\.com/file/d/([\w-]+)")
_DRIVE_FOLDER = re.compile(r"^https://drive\.google\.com/drive/folders/([\w-]+)")


@dataclass(frozen=True)
class Fetcher:
    """How to reach the network: an optional mirror root, retries and timeouts."""

    mirror: str | None = None
    retries: int = 5
    timeout: float = 60.0
    retry_wait: float = 2.0

    @classmethod
    def from_env(cls, mirror: str | None = None, **kwargs) -> "Fetcher":
        return cls(mirror=mirror or os.environ.get(MIRROR_ENV) or None, **kwargs)

    def map_url(self, url: str) -> str:
        """The address to request for `url`: itself, or its place under the mirror root."""
        if not self.mirror:
            return url
        parts = urllib.parse.urlsplit(url)
        mapped = f"{self.mirror.rstrip('/')}/{parts.netloc}{parts.path}"
        return f"{mapped}?{parts.query}" if parts.query else mapped

    def first_url(self, url: str) -> str:
        """The (unmapped) address to ask first: Drive's /file/d/ID page is a viewer, its download
        endpoint is /uc; a mirror holds the file itself at the spec URL's place."""
        match = _DRIVE_FILE.match(url)
        if match and not self.mirror:
            return f"https://drive.google.com/uc?export=download&id={match.group(1)}"
        return url

    def open(self, url: str, offset: int = 0):
        """Open `url` (already mapped) for reading, asking for bytes from `offset` on."""
        return open_url(url, offset, timeout=self.timeout, user_agent=USER_AGENT)


def is_drive_folder(url: str) -> bool:
    return bool(_DRIVE_FOLDER.match(url))


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verified_digest(path: Path) -> str | None:
    """The digest recorded when `path` was verified, if the note still matches the file's size and time."""
    note = _note_path(path)
    if not (path.is_file() and note.is_file()):
        return None
    try:
        digest, size, mtime = note.read_text().split()
    except ValueError:
        return None
    stat = path.stat()
    if int(size) != stat.st_size or int(mtime) != stat.st_mtime_ns:
        return None
    return digest


def _write_note(path: Path, digest: str) -> None:
    stat = path.stat()
    atomic_write_bytes(_note_path(path), f"{digest} {stat.st_size} {stat.st_mtime_ns}\n".encode("ascii"))


def forget_digest(path: Path) -> None:
    """Drop the verified-digest note of `path` (the file is gone or set aside)."""
    _note_path(path).unlink(missing_ok=True)


def check_digest(path: Path, expected: str | None, url: str, on_unknown: Callable[[str], None]) -> str:
    """Hash `path` (or trust its note) and compare with `expected`; a mismatch deletes the file."""
    try:
        digest = check_sha256(path, expected, f"{path} (from {url})", verified_digest(path))
    except DownloadError as err:
        path.unlink()
        forget_digest(path)
        raise BenchError(f"{err}; the corrupt file was deleted, rerun `bench prepare` to download it again") from None
    if not expected:
        on_unknown(digest)
    _write_note(path, digest)
    return digest


class _DriveAnswer(Exception):
    """A Drive HTML page in place of the file, with the address to try next (if any)."""

    def __init__(self, next_url: str | None, reason: str):
        super().__init__(reason)
        self.next_url = next_url
        self.reason = reason


def _drive_next_url(page: str, base_url: str) -> str | None:
    """The download address behind Drive's "cannot scan this file for viruses" page, if there is one."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S)
    if form:
        action = html.unescape(form.group(1))
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        if fields:
            query = urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()})
            return urllib.parse.urljoin(base_url, action) + "?" + query
    link = re.search(r'href="(/uc\?export=download[^"]*confirm=[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(base_url, html.unescape(link.group(1)))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        parts = urllib.parse.urlsplit(base_url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["confirm"] = token.group(1)
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return None


def _drive_quota(page: str) -> bool:
    lowered = page.lower()
    return "too many users" in lowered or "quota" in lowered


def download(
    url: str,
    dest: Path,
    fetcher: Fetcher,
    sha256: str | None = None,
    on_unknown: Callable[[str], None] = lambda digest: None,
    progress: Progress | None = None,
) -> Path:
    """Fetch `url` to `dest` (resuming `dest.part`), verify it, and return `dest`.

    An existing `dest` is verified instead of fetched again. Connection drops are retried from the
    bytes already received; `fetcher.retries` failures in a row give a BenchError that keeps the
    `.part` file for the next run.
    """
    dest = Path(dest)
    if dest.is_file():
        check_digest(dest, sha256, url, on_unknown)
        return dest
    part = dest.with_name(dest.name + ".part")
    logical_url = fetcher.first_url(url)
    for _ in range(MAX_DRIVE_HOPS + 1):
        request_url = fetcher.map_url(logical_url)
        try:
            fetch_resumable(request_url, part, fetcher.open, fetcher.retries, fetcher.retry_wait, progress,
                            inspect=lambda response, base=logical_url: _refuse_drive_page(response, base),
                            resume_hint="rerun `bench prepare` to continue")
            break
        except _DriveAnswer as answer:
            if answer.next_url is None:
                raise _drive_failure(url, dest, answer.reason) from None
            logical_url = answer.next_url
        except DownloadError as err:
            if err.status is not None:
                raise BenchError(
                    f"{err}; check the URL in the spec or the mirror (or put the file at {dest} by hand) and rerun"
                ) from None
            raise BenchError(str(err)) from None
    else:
        raise _drive_failure(url, dest, "too many confirmation pages")
    os.replace(part, dest)
    check_digest(dest, sha256, url, on_unknown)
    return dest


def _drive_failure(url: str, dest: Path, reason: str) -> BenchError:
    return BenchError(
        f"{url}: Google Drive answered with a page instead of the file ({reason}); "
        f"download it in a browser and save it as {dest}, then rerun `bench prepare`"
    )


def _refuse_drive_page(response, logical_url: str) -> None:
    """Drive answers some requests with an HTML page (virus-scan warning, quota) instead of the file.

    `logical_url` is the address before mirror mapping; links in the page are resolved against it.
    """
    host = urllib.parse.urlsplit(logical_url).netloc
    if "text/html" in response.headers.get("Content-Type", "") and host in _DRIVE_HOSTS:
        page = response.read(2 << 20).decode("utf-8", "replace")
        if _drive_quota(page):
            raise _DriveAnswer(None, "download quota exceeded")
        raise _DriveAnswer(_drive_next_url(page, logical_url), "virus-scan warning")


# ----------------------------------------------------------------------------------------------
# Google Drive folders


@dataclass(frozen=True)
class FolderEntry:
    relpath: str
    url: str  # unmapped: a Drive file URL, or (listed from a mirror) the folder URL + "/" + relpath


def list_drive_folder(url: str, fetcher: Fetcher, _prefix: str = "", _depth: int = 0) -> list[FolderEntry]:
    """Every file of a Drive folder (recursively), from Drive's embedded folder view or the mirror's index."""
    if _depth > 8:
        raise BenchError(f"{url}: folder nesting deeper than 8 levels; download it by hand")
    match = _DRIVE_FOLDER.match(url)
    if fetcher.mirror:
        index_url = fetcher.map_url(url).rstrip("/") + "/"
        page = _read_text(index_url, fetcher)
        entries = []
        for href in re.findall(r'href="([^"]+)"', page):
            href = html.unescape(href)
            if href.startswith(("?", "#", "/", "..")) or "://" in href:
                continue
            name = urllib.parse.unquote(href.rstrip("/"))
            if href.endswith("/"):
                entries.extend(list_drive_folder(url.rstrip("/") + "/" + href.rstrip("/"), fetcher, _prefix + name + "/", _depth + 1))
            else:
                entries.append(FolderEntry(_prefix + name, url.rstrip("/") + "/" + href))
        return entries
    if not match:
        raise BenchError(f"{url}: not a Google Drive folder URL (https://drive.google.com/drive/folders/<ID>)")
    page = _read_text(f"https://drive.google.com/embeddedfolderview?id={match.group(1)}", fetcher)
    entries = []
    for href, name in parse_embedded_folder_view(page):
        if _DRIVE_FOLDER.match(href):
            entries.extend(list_drive_folder(href, fetcher, _prefix + name + "/", _depth + 1))
            continue
        file_match = re.search(r"/file/d/([\w-]+)", href)
        if file_match:
            entries.append(FolderEntry(_prefix + name, f"https://drive.google.com/file/d/{file_match.group(1)}"))
    if not entries:
        raise BenchError(
            f"{url}: could not list this Google Drive folder; download it in a browser and unpack it into the "
            "download folder under the name the spec gives, then rerun"
        )
    return entries


def parse_embedded_folder_view(page: str) -> list[tuple[str, str]]:
    """(link, title) of each entry of Drive's ``embeddedfolderview`` page: every entry is an
    ``<a href=...>`` followed, before the next link, by a ``flip-entry-title`` element."""
    pairs = re.findall(r'<a href="([^"]+)"(?:(?!<a ).)*?class="flip-entry-title">([^<]+)<', page, re.S)
    return [(html.unescape(href), html.unescape(title).strip()) for href, title in pairs]


def _read_text(url: str, fetcher: Fetcher) -> str:
    try:
        with fetcher.open(url) as response:
            return response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as err:
        raise BenchError(f"{url}: could not read the folder listing ({err}); check the network or mirror and rerun") from None


def download_drive_folder(
    url: str,
    dest_dir: Path,
    fetcher: Fetcher,
    on_unknown: Callable[[str, str], None] = lambda relpath, digest: None,
    progress: Progress | None = None,
) -> Path:
    """Fetch every file of a Drive folder into `dest_dir` (kept layout); a `.complete` note marks the end."""
    dest_dir = Path(dest_dir)
    marker = dest_dir / ".complete"
    if marker.is_file():
        return dest_dir
    for entry in list_drive_folder(url, fetcher):
        target = dest_dir / entry.relpath
        if not target.resolve().is_relative_to(dest_dir.resolve()):
            raise BenchError(f"{url}: folder entry '{entry.relpath}' points outside {dest_dir}; refusing it")
        download(entry.url, target, fetcher, None, lambda d, r=entry.relpath: on_unknown(r, d), progress)
    marker.write_text("")
    return dest_dir
