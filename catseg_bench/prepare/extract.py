"""Unpacking archives without letting any member escape its target folder.

Every member name is checked before a single byte is written: absolute paths, drive letters,
``..`` components and links are refused, so a hostile or broken archive cannot write outside
the dataset folder (zip-slip). Formats:

- zip: :mod:`zipfile`; a password-protected zip (FoodSeg103, traditional PKWARE encryption) goes
  through libarchive, which decrypts in C (``zipfile`` decrypts at about 3 MB/s in pure Python,
  several minutes for FoodSeg103's 1.2 GB);
- tar, tar.gz, tgz: :mod:`tarfile` (with the stdlib ``data`` filter as a second guard);
- rar (DRAM): libarchive, through the ``libarchive-c`` binding. libarchive reads RAR 4 and RAR 5,
  ships with most Linux systems and macOS, and needs neither the non-free ``unrar`` nor a Python
  reimplementation; we write each entry ourselves after checking its name.

``strip`` drops leading path components (GitHub archives wrap everything in ``<repo>-<ref>/``);
``subdir`` keeps only members under that folder (after stripping) and drops it from their names.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from catseg_bench.errors import BenchError
from catseg_bench.prepare import INSTALL_EXTRA


def safe_member_path(dest: Path, name: str, archive: Path) -> Path:
    """Where member `name` lands under `dest`; a BenchError if it would land anywhere else."""
    cleaned = name.replace("\\", "/")
    pure = PurePosixPath(cleaned)
    if (
        cleaned.startswith("/")
        or (len(cleaned) > 1 and cleaned[1] == ":")
        or any(part == ".." for part in pure.parts)
    ):
        raise BenchError(f"{archive}: member '{name}' points outside the target folder; refusing to extract this archive")
    target = dest.joinpath(*[p for p in pure.parts if p not in ("", ".")])
    if not target.resolve().is_relative_to(dest.resolve()):
        raise BenchError(f"{archive}: member '{name}' resolves outside the target folder; refusing to extract this archive")
    return target


def _rename(name: str, strip: int, subdir: str | None) -> str | None:
    """Member name after dropping `strip` components and keeping only `subdir`; None to skip it."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    parts = parts[strip:]
    if subdir:
        prefix = [p for p in subdir.split("/") if p]
        if parts[: len(prefix)] != prefix:
            return None
        parts = parts[len(prefix):]
    return "/".join(parts) if parts else None


def archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".rar"):
        return "rar"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if name.endswith(".zip") or zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    with path.open("rb") as handle:
        if handle.read(7) in (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01"):
            return "rar"
    raise BenchError(f"{path}: not a zip, tar or rar archive; delete it and rerun to download it again")


def extract(
    archive: Path,
    dest: Path,
    password: str | None = None,
    strip: int = 0,
    subdir: str | None = None,
) -> list[Path]:
    """Unpack `archive` into `dest` (created); returns the files written."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kind = archive_kind(archive)
    if kind == "zip":
        return _extract_zip(archive, dest, password, strip, subdir)
    if kind == "tar":
        return _extract_tar(archive, dest, strip, subdir)
    return _extract_libarchive(archive, dest, password, strip, subdir)


def _plan(archive: Path, dest: Path, names: Iterator[tuple[str, object]], strip: int, subdir: str | None):
    """Check every member name first; return [(member, target)] for the members to write."""
    plan = []
    for name, member in names:
        safe_member_path(dest, name, archive)  # the name as stored must be safe, whatever we keep of it
        renamed = _rename(name, strip, subdir)
        if renamed is not None:
            plan.append((member, safe_member_path(dest, renamed, archive)))
    return plan


def _extract_zip(archive: Path, dest: Path, password: str | None, strip: int, subdir: str | None) -> list[Path]:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise BenchError(f"{archive}: broken zip archive ({err}); delete it and rerun to download it again") from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BenchError(f"{archive}: member '{info.filename}' is a symbolic link; refusing to extract this archive")
        if any(info.flag_bits & 0x1 for info in infos):
            if password is None:
                raise BenchError(f"{archive}: the zip is encrypted and the spec gives no password ([prepare].files password)")
            return _extract_libarchive(archive, dest, password, strip, subdir)
        written = []
        for info, target in _plan(archive, dest, ((i.filename, i) for i in infos), strip, subdir):
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise BenchError(f"{archive}: cannot read member '{info.filename}' ({err}); the archive is damaged") from None
            written.append(target)
        return written


def _extract_tar(archive: Path, dest: Path, strip: int, subdir: str | None) -> list[Path]:
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as err:
        raise BenchError(f"{archive}: broken tar archive ({err}); delete it and rerun to download it again") from None
    with tf:
        members = tf.getmembers()
        for member in members:
            if member.issym() or member.islnk():
                link_target = (PurePosixPath(member.name).parent / member.linkname) if member.issym() else PurePosixPath(member.linkname)
                safe_member_path(dest, str(link_target), archive)
            elif not (member.isfile() or member.isdir()):
                raise BenchError(f"{archive}: member '{member.name}' is a device or fifo; refusing to extract this archive")
        written = []
        for member, target in _plan(archive, dest, ((m.name, m) for m in members), strip, subdir):
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if member.issym() or member.islnk():
                continue  # datasets need no links; their targets were checked above
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                src = tf.extractfile(member)
                with src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (tarfile.TarError, OSError, EOFError) as err:
                raise BenchError(f"{archive}: cannot read member '{member.name}' ({err}); the archive is damaged") from None
            written.append(target)
        return written


def _libarchive():
    try:
        import libarchive
    except ImportError:
        raise BenchError(f"reading rar and encrypted zip archives needs libarchive-c: {INSTALL_EXTRA}") from None
    except OSError as err:
        raise BenchError(
            f"reading rar and encrypted zip archives needs the system libarchive ({err}): "
            "apt install libarchive13 (or brew install libarchive)"
        ) from None
    return libarchive


def _extract_libarchive(archive: Path, dest: Path, password: str | None, strip: int, subdir: str | None) -> list[Path]:
    libarchive = _libarchive()
    try:
        with libarchive.file_reader(str(archive), passphrase=password) as reader:
            names = []
            for entry in reader:
                if entry.issym or entry.islnk:
                    raise BenchError(f"{archive}: member '{entry.pathname}' is a link; refusing to extract this archive")
                names.append((entry.pathname, entry.pathname))
        plan = dict(_plan(archive, dest, iter(names), strip, subdir))
        written = []
        with libarchive.file_reader(str(archive), passphrase=password) as reader:
            for entry in reader:
                target = plan.get(entry.pathname)
                if target is None:
                    continue
                if entry.isdir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    for block in entry.get_blocks():
                        out.write(block)
                written.append(target)
        return written
    except libarchive.ArchiveError as err:
        hint = " (wrong password?)" if password else ""
        raise BenchError(f"{archive}: cannot read the archive{hint} ({err}); delete it and rerun to download it again") from None
