"""Preparing one dataset: fetch its sources, run its recipe in a work folder, verify, publish.

Layout under the data root ``R`` for a spec whose data lives in ``R/<top>/...``:

- ``R/.bench-prepare/<dataset>/`` is the work folder, itself shaped like a data root: the recipe
  unpacks and converts into ``<work>/<top>/``; ``<work>/.steps/`` remembers finished extractions so
  an interrupted run does not unpack again (forgotten before raw folders are deleted).
- When the recipe is done, the work folder is checked as `bench datasets check` does (each
  evaluation set must hold exactly ``num_images`` pairs, every image and label must decode, and the
  labels must match the fingerprint and pixel counts the spec records); only then are the per-image
  label digests (``<label_dir>/.bench-label-digests.json``), the recipe's departures from MESS's
  script if any (``<label_dir>/.bench-mess-departures.json``, also said in one line when they
  happen) and ``<top>/.bench-prepared.json`` written and ``<work>/<top>`` renamed to ``R/<top>`` in one step. A crash at any earlier point
  leaves nothing at ``R/<top>``, so nothing half-converted is ever taken for done.
- Some datasets share a top folder, as CAT-Seg lays them out (PC-59 and PC-459 in
  ``VOCdevkit/VOC2010``, PAS-20 and PAS-20b in ``VOCdevkit/VOC2012``). When ``R/<top>`` already holds
  another dataset that `bench prepare` prepared (its marker says so), this one is prepared in its
  own work folder as usual, verified there, and then merged in: files ``R/<top>`` lacks are moved
  in, files it has are kept, and the marker gains this dataset under ``shared_with``.

Sources go to ``<download-dir>/<dataset>/<name>`` (default download dir: ``R/.bench-downloads``).
Manual sources are looked for there and directly in ``<download-dir>``. The sha256 of a source
whose spec records none is printed for recording only once the dataset verified. A downloaded
archive that turns out unreadable is moved aside (``<name>.broken-<time>``) so the next run
fetches it again instead of failing on the same file.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from catseg_bench.data.check import SetCheck
from catseg_bench.data.labelstats import write_manifest
from catseg_bench.errors import BenchError
from catseg_bench.prepare import download as dl
from catseg_bench.prepare.extract import extract
from catseg_bench.prepare.verify import verify_prepared
from catseg_bench.specs import DatasetSpec
from model.common.files import atomic_write_json

DONE_MARKER = ".bench-prepared.json"
DEPARTURES_NAME = ".bench-mess-departures.json"  # beside the labels, when the recipe departed from MESS
WORK_DIR = ".bench-prepare"
_STEPS_DIR = ".steps"
_SOURCE_KEYS = {"url", "name", "sha256", "password", "alternatives", "folder"}


@dataclass(frozen=True)
class Source:
    """One entry of a spec's ``[prepare].files``."""

    name: str
    url: str | None = None
    sha256: str | None = None
    password: str | None = None
    alternatives: tuple[str, ...] = ()
    folder: bool = False  # a Google Drive folder (downloaded as a directory)


def parse_sources(spec: DatasetSpec) -> list[Source]:
    sources = []
    for index, entry in enumerate(spec.prepare.get("files", [])):
        where = f"{spec.path}: [prepare].files[{index}]"
        if not isinstance(entry, dict):
            raise BenchError(f"{where} must be an inline table like {{ url = \"...\", sha256 = \"...\" }}")
        unknown = set(entry) - _SOURCE_KEYS
        if unknown:
            raise BenchError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_SOURCE_KEYS)}")
        url = entry.get("url")
        folder = bool(entry.get("folder", url is not None and dl.is_drive_folder(url)))
        name = entry.get("name")
        if name is None:
            if url is None or "drive.google.com" in url:
                raise BenchError(f"{where} needs a `name` (the file name to save it as)")
            name = url.rstrip("/").rsplit("/", 1)[-1]
        if "/" in name or name in ("", ".", ".."):
            raise BenchError(f"{where}: name '{name}' must be a plain file name")
        sha = entry.get("sha256")
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)):
            raise BenchError(f"{where}: sha256 '{sha}' is not 64 hex digits")
        sources.append(Source(name, url, sha, entry.get("password"), tuple(entry.get("alternatives", ())), folder))
    return sources


def data_top(spec: DatasetSpec) -> str:
    """The one folder under the data root that holds all of `spec`'s data."""
    dirs = [spec.data.image_dir] + [e.label_dir for e in spec.eval_sets()]
    tops = {Path(d).parts[0] for d in dirs}
    if len(tops) != 1:
        raise BenchError(f"{spec.path}: image and label folders start in different top folders {sorted(tops)}; `bench prepare` needs one")
    return tops.pop()


class Reporter:
    """Messages and rich progress bars on one console."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.bytes_progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=self.console, transient=True,
        )

    def say(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)


@dataclass
class RecipeContext:
    """What a recipe works with. Paths given to recipes are under `root`, a work data root."""

    spec: DatasetSpec
    root: Path
    sources: dict[str, Path]
    jobs: int
    reporter: Reporter
    password: dict[str, str | None] = field(default_factory=dict)
    cleanups: list[Path] = field(default_factory=list)
    downloaded: frozenset[str] = frozenset()  # names of sources fetched by us (not placed by hand)
    departures: list[str] = field(default_factory=list)  # where this preparation differs from MESS's script

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.spec.prepare.get("options", {}))

    @property
    def top(self) -> Path:
        return self.root / data_top(self.spec)

    def source(self, name: str) -> Path:
        if name not in self.sources:
            raise BenchError(f"{self.spec.path}: recipe '{self.spec.name}' needs a [prepare].files entry named '{name}'")
        return self.sources[name]

    def extract(self, archive: str | Path, into: str | Path, strip: int = 0, subdir: str | None = None) -> None:
        """Unpack a source (by name) or a file under `root` into `root/into`, once."""
        step = self.root / _STEPS_DIR / f"extract--{Path(str(archive)).name}--{str(into).replace('/', '_')}"
        if isinstance(archive, str) and archive in self.sources:
            path, password = self.sources[archive], self.password.get(archive)
        else:
            path, password = self.root / archive, None
        # An archive that is gone was unpacked before (inner archives are deleted after unpacking);
        # one that changed since (downloaded again) is unpacked again.
        stamp = f"{path.stat().st_size} {path.stat().st_mtime_ns}" if path.is_file() else "folder"
        if step.exists() and (not path.exists() or step.read_text() == stamp):
            return
        target = self.root / into
        if path.is_dir():  # a source placed or downloaded as a folder
            link_tree(path, target)
        else:
            self.reporter.say(f"  unpacking {path.name} -> {target.relative_to(self.root)}")
            try:
                extract(path, target, password=password, strip=strip, subdir=subdir)
            except BenchError as err:
                if archive in self.downloaded:
                    aside = set_aside(path)
                    raise BenchError(f"{err.message}; it was moved aside to {aside.name}, rerun `bench prepare` "
                                     "to download it again") from None
                raise
        step.parent.mkdir(parents=True, exist_ok=True)
        step.write_text(stamp)

    def map(self, fn: Callable[[Any], int], items: Sequence[Any], description: str) -> int:
        """Run `fn` over `items` on `jobs` processes with a progress bar; returns the sum of results."""
        total = 0
        task = self.reporter.progress.add_task(f"  {description}", total=len(items))
        with self.reporter.progress:
            if self.jobs <= 1 or len(items) <= 1:
                for item in items:
                    total += fn(item) or 0
                    self.reporter.progress.advance(task)
            else:
                with ProcessPoolExecutor(max_workers=self.jobs) as pool:
                    futures = [pool.submit(fn, item) for item in items]
                    for future in as_completed(futures):
                        total += future.result() or 0
                        self.reporter.progress.advance(task)
        self.reporter.progress.remove_task(task)
        return total

    def depart(self, what: str) -> None:
        """Say in one line, and record beside the labels (:data:`DEPARTURES_NAME`), that this
        preparation deliberately differs from MESS's script here (README, "Departures from MESS")."""
        self.departures.append(what)
        self.reporter.say(f"  {self.spec.display_name}: departure from MESS: {what}")

    def remove_after_verify(self, path: Path) -> None:
        """Delete `path` once the dataset has verified (MESS deletes some raw folders to save disk)."""
        self.cleanups.append(path)


def set_aside(path: Path) -> Path:
    """Rename a broken download to ``<name>.broken-<time>`` (kept for inspection, never reused) and
    forget its verified digest, so the next run fetches the file again."""
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    dl.forget_digest(path)
    return aside


def link_tree(src: Path, dst: Path) -> None:
    """Copy a folder tree, hard-linking files where the file system allows (no second copy on disk)."""

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".complete", "*.sha256"))


@dataclass
class Outcome:
    name: str
    status: str  # "done" (earlier), "found" (already there, verified now), "prepared", "manual"
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""


def manual_instructions(spec: DatasetSpec, missing: Iterable[Source], folder: Path) -> str:
    lines = [f"{spec.display_name} ({spec.name}) needs files you download yourself:"]
    for source in missing:
        alt = f" (or {', '.join(source.alternatives)})" if source.alternatives else ""
        where = f" from {source.url}" if source.url else ""
        lines.append(f"  - {source.name}{alt}{where}")
    if spec.prepare.get("notes"):
        lines.append(f"  how: {spec.prepare['notes']}")
    lines.append(f"  put them in {folder}/ and rerun `bench prepare {spec.name}`")
    return "\n".join(lines)


@dataclass
class Fetched:
    """The sources of one dataset on disk, and what is still missing or unrecorded."""

    paths: dict[str, Path] = field(default_factory=dict)
    missing: list[Source] = field(default_factory=list)  # manual sources not found
    unrecorded: list[tuple[str, str]] = field(default_factory=list)  # (file, sha256) the spec gives no digest for


def fetch_sources(spec: DatasetSpec, download_dir: Path, fetcher: dl.Fetcher, reporter: Reporter) -> Fetched:
    """Local paths of every source (downloading what is missing); the manual sources still missing;
    the digests of files the spec records none for (to print once the dataset verified)."""
    folder = download_dir / spec.name
    manual = bool(spec.prepare.get("manual", False))
    fetched = Fetched()
    paths = fetched.paths
    for source in parse_sources(spec):
        if manual:
            found = _find_manual(source, [folder, download_dir])
            if found is None:
                fetched.missing.append(source)
                continue
            if found.is_file():
                dl.check_digest(found, source.sha256, source.name, _unrecorded(fetched, source.name))
            paths[source.name] = found
            continue
        if source.url is None:
            raise BenchError(f"{spec.path}: [prepare].files entry '{source.name}' has no url and the dataset is not manual")
        target = folder / source.name
        if source.folder:
            reporter.say(f"  fetching folder {source.url}")
            paths[source.name] = dl.download_drive_folder(
                source.url, target, fetcher,
                on_unknown=lambda rel, digest, name=source.name: fetched.unrecorded.append((f"{name}/{rel}", digest)),
                progress=_byte_progress(reporter, source.name),
            )
            continue
        if not target.is_file():
            reporter.say(f"  downloading {source.url}")
        paths[source.name] = dl.download(
            source.url, target, fetcher, source.sha256,
            on_unknown=_unrecorded(fetched, source.name),
            progress=_byte_progress(reporter, source.name),
        )
    return fetched


def _find_manual(source: Source, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for name in (source.name, *source.alternatives):
            candidate = folder / name
            if candidate.exists():
                return candidate
    return None


def _unrecorded(fetched: Fetched, name: str) -> Callable[[str], None]:
    return lambda digest: fetched.unrecorded.append((name, digest))


def _report_unrecorded(reporter: Reporter, spec: DatasetSpec, fetched: Fetched) -> None:
    """The digests of the verified dataset's sources that its spec does not record."""
    for name, digest in fetched.unrecorded:
        reporter.say(f"  sha256 {digest}  {name}  (verified; no digest in {spec.path.name}: record it as sha256 = \"{digest}\")")


def _report_checks(reporter: Reporter, checks: dict[str, SetCheck]) -> None:
    for check in checks.values():
        for warning in check.warnings:
            reporter.say(f"  [yellow]warning:[/yellow] {warning}")


def _byte_progress(reporter: Reporter, name: str) -> dl.Progress:
    state: dict[str, Any] = {}

    def update(done: int, total: int | None) -> None:
        if "task" not in state:
            reporter.bytes_progress.start()
            state["task"] = reporter.bytes_progress.add_task(f"  {name}", total=total)
        reporter.bytes_progress.update(state["task"], completed=done, total=total)
        if total is not None and done >= total:
            reporter.bytes_progress.remove_task(state.pop("task"))
            reporter.bytes_progress.stop()

    return update


def read_done_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _write_manifests(spec: DatasetSpec, root: Path, checks: dict[str, SetCheck]) -> None:
    for eval_set in spec.eval_sets():
        stats = checks[eval_set.name].stats
        if stats is not None:
            write_manifest(eval_set, root, stats)


def _write_departures(spec: DatasetSpec, root: Path, checks: dict[str, SetCheck], departures: list[str]) -> None:
    """Record the recipe's departures from MESS beside each evaluation set's labels, with the
    fingerprint of the labels they produced."""
    for eval_set in spec.eval_sets():
        stats = checks[eval_set.name].stats
        atomic_write_json(root / eval_set.label_dir / DEPARTURES_NAME, {
            "dataset": spec.name, "eval_set": eval_set.name, "departures_from_mess": departures,
            "label_fingerprint": None if stats is None else stats.fingerprint,
            "see": "README.md, section 'Departures from MESS'",
        })


def _write_marker(top: Path, spec: DatasetSpec, counts: dict[str, int]) -> None:
    """Mark `spec` done in `top`; a top another dataset was marked done in keeps that record and
    lists this one under ``shared_with``."""
    record = {
        "dataset": spec.name,
        "spec_hash": spec.spec_hash,
        "num_images": spec.num_images,
        "counts": counts,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    existing = read_done_marker(top)
    if existing is not None and existing.get("dataset") not in (None, spec.name):
        existing.setdefault("shared_with", {})[spec.name] = {k: v for k, v in record.items() if k != "dataset"}
        record = existing
    atomic_write_json(top / DONE_MARKER, record)


def prepared_counts(marker: dict[str, Any] | None, name: str) -> dict[str, int] | None:
    """The image counts a done marker records for dataset `name`, or None when it does not mark it done."""
    if not marker:
        return None
    if marker.get("dataset") == name:
        return marker.get("counts", {})
    shared = marker.get("shared_with", {})
    return shared[name].get("counts", {}) if isinstance(shared, dict) and isinstance(shared.get(name), dict) else None


def merge_tree(src: Path, dst: Path) -> None:
    """Move what `dst` lacks from `src` into it (whole folders at once); files `dst` has stay as they are."""
    for entry in src.iterdir():
        target = dst / entry.name
        if not target.exists():
            os.replace(entry, target)
        elif entry.is_dir() and target.is_dir():
            merge_tree(entry, target)


def prepare_dataset(
    spec: DatasetSpec,
    recipe: Callable[[RecipeContext], None],
    data_root: Path,
    download_dir: Path,
    fetcher: dl.Fetcher,
    jobs: int,
    keep_archives: bool,
    reporter: Reporter,
) -> Outcome:
    data_root, download_dir = Path(data_root), Path(download_dir)
    top_name = data_top(spec)
    final = data_root / top_name
    marker = read_done_marker(final)
    done = prepared_counts(marker, spec.name)
    if done is not None:
        return Outcome(spec.name, "done", done, f"already prepared in {final}")
    checks = None
    if final.exists():
        try:
            checks = verify_prepared(spec, data_root, workers=max(1, jobs))
        except BenchError as err:
            if marker is None:
                raise BenchError(
                    f"{final} exists but is not a complete {spec.display_name} ({err.message}); "
                    "move it away (or delete it) and rerun"
                ) from None
            # Another dataset prepared here shares this top folder: prepare this one and merge it in.
    if checks is not None:
        _report_checks(reporter, checks)
        counts = {name: spec.num_images for name in checks}
        _write_manifests(spec, data_root, checks)
        _write_marker(final, spec, counts)
        return Outcome(spec.name, "found", counts, f"found prepared data in {final}; verified and marked done")

    fetched = fetch_sources(spec, download_dir, fetcher, reporter)
    if fetched.missing:
        return Outcome(spec.name, "manual", {}, manual_instructions(spec, fetched.missing, download_dir / spec.name))

    work = data_root / WORK_DIR / spec.name
    work.mkdir(parents=True, exist_ok=True)
    passwords = {s.name: s.password for s in parse_sources(spec)}
    downloaded = frozenset() if spec.prepare.get("manual", False) else frozenset(fetched.paths)
    context = RecipeContext(spec, work, fetched.paths, max(1, jobs), reporter, passwords, downloaded=downloaded)
    recipe(context)
    try:
        checks = verify_prepared(spec, work, workers=context.jobs)
    except BenchError as err:
        raise BenchError(f"{err.message} (the work folder {work} is kept; a rerun converts again)") from None
    _report_checks(reporter, checks)
    _report_unrecorded(reporter, spec, fetched)
    counts = {name: spec.num_images for name in checks}
    # Cleanups delete unpacked files the recipe reads: forget the finished extractions first, so a run
    # interrupted from here on unpacks again rather than converting from half-deleted folders.
    shutil.rmtree(work / _STEPS_DIR, ignore_errors=True)
    for path in context.cleanups:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    _write_manifests(spec, work, checks)
    if context.departures:
        _write_departures(spec, work, checks, context.departures)
    if final.exists():
        merge_tree(work / top_name, final)
        _write_marker(final, spec, counts)
    else:
        _write_marker(work / top_name, spec, counts)
        os.replace(work / top_name, final)
    shutil.rmtree(work)
    if not keep_archives and not spec.prepare.get("manual", False):
        shutil.rmtree(download_dir / spec.name, ignore_errors=True)
    return Outcome(spec.name, "prepared", counts, f"prepared {final}")
