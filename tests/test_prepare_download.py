"""`bench prepare` machinery: downloads (resume, checksums, Drive pages, folders), safe extraction,
and the done/resume rules of the pipeline, against a local mirror server on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catseg_bench.errors import BenchError
from catseg_bench.prepare.download import Fetcher, download, download_drive_folder, parse_embedded_folder_view
from catseg_bench.prepare.extract import extract
from test_prepare_support import (
    encrypted_zip_bytes, make_test_spec, png, rar4_bytes, read, sha, start_server, tar_bytes, zip_bytes,
)


@pytest.fixture()
def server(tmp_path):
    srv = start_server(tmp_path / "mirror")
    yield srv
    srv.shutdown()
    srv.server_close()


def fetcher(server, **kwargs) -> Fetcher:
    return Fetcher(mirror=server.url, retry_wait=0.0, timeout=10, **kwargs)


URL = "https://example.org/data/archive.zip"


def test_mirror_mapping_keeps_host_and_path():
    f = Fetcher(mirror="http://m.local/root/")
    assert f.map_url("https://example.org/a/b%20c.zip") == "http://m.local/root/example.org/a/b%20c.zip"
    assert f.map_url("https://h.org/x?y=1") == "http://m.local/root/h.org/x?y=1"
    assert Fetcher().map_url(URL) == URL
    assert Fetcher().first_url("https://drive.google.com/file/d/AbC-1") == "https://drive.google.com/uc?export=download&id=AbC-1"
    assert f.first_url("https://drive.google.com/file/d/AbC-1") == "https://drive.google.com/file/d/AbC-1"


def test_download_cut_in_the_middle_resumes_with_range(server, tmp_path):
    data = bytes(range(256)) * 400
    server.place(URL, data)
    server.cut_after["/example.org/data/archive.zip"] = 30_000
    dest = download(URL, tmp_path / "dl" / "archive.zip", fetcher(server), sha256=sha(data))
    assert dest.read_bytes() == data
    assert [r for _, r in server.log] == [None, "bytes=30000-"]


def test_interrupted_run_keeps_part_file_and_next_run_continues(server, tmp_path):
    data = bytes(range(256)) * 400
    server.place(URL, data)
    server.cut_after["/example.org/data/archive.zip"] = 12_345
    dest = tmp_path / "dl" / "archive.zip"
    with pytest.raises(BenchError, match="rerun `bench prepare` to continue"):
        download(URL, dest, fetcher(server, retries=0), sha256=sha(data))
    assert (tmp_path / "dl" / "archive.zip.part").stat().st_size == 12_345
    download(URL, dest, fetcher(server), sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.log[-1][1] == "bytes=12345-"
    assert not (tmp_path / "dl" / "archive.zip.part").exists()


def test_corrupted_archive_fails_its_checksum_and_is_removed(server, tmp_path):
    good = zip_bytes({"a.txt": b"hello"})
    server.place(URL, good[:-10] + b"0123456789")
    dest = tmp_path / "archive.zip"
    with pytest.raises(BenchError, match="does not match the expected"):
        download(URL, dest, fetcher(server), sha256=sha(good))
    assert not dest.exists()


def test_unknown_digest_is_reported_and_noted(server, tmp_path):
    data = b"x" * 1000
    server.place(URL, data)
    seen = []
    dest = download(URL, tmp_path / "a.bin", fetcher(server), on_unknown=seen.append)
    assert seen == [sha(data)]
    assert (tmp_path / "a.bin.sha256").read_text().split()[0] == sha(data)
    requests = len(server.log)
    download(URL, dest, fetcher(server), sha256=sha(data))  # already there: verified, not fetched
    assert len(server.log) == requests


def test_drive_virus_scan_page_is_followed(server, tmp_path):
    data = b"drive file" * 100
    page = (
        '<html><body>Google Drive can\'t scan this file for viruses.'
        '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
        '<input type="submit" value="Download anyway"/>'
        '<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1"></form></body></html>'
    )
    server.pages["/drive.google.com/file/d/FILEID"] = ("text/html; charset=utf-8", page.encode())
    server.pages["/drive.usercontent.google.com/download?id=FILEID&export=download&confirm=t&uuid=u-1"] = (
        "application/octet-stream", data)
    dest = download("https://drive.google.com/file/d/FILEID", tmp_path / "f.zip", fetcher(server), sha256=sha(data))
    assert dest.read_bytes() == data


def test_drive_quota_page_asks_for_a_manual_download(server, tmp_path):
    page = b"<html><body>Too many users have viewed or downloaded this file recently.</body></html>"
    server.pages["/drive.google.com/file/d/QUOTA"] = ("text/html", page)
    with pytest.raises(BenchError, match="download it in a browser and save it as"):
        download("https://drive.google.com/file/d/QUOTA", tmp_path / "q.zip", fetcher(server))


def test_drive_folder_from_mirror_index(server, tmp_path):
    url = "https://drive.google.com/drive/folders/FOLDER"
    server.place_folder(url, {"S2/a.tif": b"a", "S2/b c.tif": b"bc", "gt/a.tif": b"g"})
    out = download_drive_folder(url, tmp_path / "folder", fetcher(server))
    assert (out / "S2" / "b c.tif").read_bytes() == b"bc"
    assert (out / "gt" / "a.tif").read_bytes() == b"g"
    assert (out / ".complete").exists()


def test_drive_embedded_folder_view_is_parsed():
    page = (
        '<div class="flip-entries"><div class="flip-entry" id="entry-1aB" tabindex="0">'
        '<div class="flip-entry-info"><a href="https://drive.google.com/file/d/1aB_c-D/view?usp=drive_web" target="_blank">'
        '<div class="flip-entry-visual"><img src="x"></div><div class="flip-entry-title">part1.zip</div></a></div></div>'
        '<div class="flip-entry" id="entry-2"><div class="flip-entry-info">'
        '<a href="https://drive.google.com/drive/folders/2Fold" target="_blank"><div class="flip-entry-list-icon"></div>'
        '<div class="flip-entry-title">S2 &amp; gt</div></a></div></div></div>'
    )
    assert parse_embedded_folder_view(page) == [
        ("https://drive.google.com/file/d/1aB_c-D/view?usp=drive_web", "part1.zip"),
        ("https://drive.google.com/drive/folders/2Fold", "S2 & gt"),
    ]


# ------------------------------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    "name,data",
    [
        ("evil.zip", zip_bytes({"ok.txt": b"1", "../escape.txt": b"2"})),
        ("evil.tar.gz", tar_bytes({"ok.txt": b"1", "../../escape.txt": b"2"})),
        ("abs.tar", tar_bytes({"/tmp/escape.txt": b"2"}, mode="w")),
        ("evil.rar", rar4_bytes({"ok.txt": b"1", "../escape.txt": b"2"})),
    ],
)
def test_archive_with_parent_paths_is_refused_before_writing(tmp_path, name, data):
    archive = tmp_path / name
    archive.write_bytes(data)
    target = tmp_path / "out" / "inner"
    with pytest.raises(BenchError, match="outside the target folder"):
        extract(archive, target)
    assert not (target / "ok.txt").exists()
    assert not (tmp_path / "out" / "escape.txt").exists()


def test_tar_symlink_pointing_outside_is_refused(tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../etc/passwd"
        tf.addfile(link)
    (tmp_path / "l.tar").write_bytes(buffer.getvalue())
    with pytest.raises(BenchError, match="outside the target folder"):
        extract(tmp_path / "l.tar", tmp_path / "out")


def test_encrypted_zip_rar_and_strip(tmp_path):
    (tmp_path / "p.zip").write_bytes(encrypted_zip_bytes({"Top/a/x.txt": b"secret"}, "pw9947"))
    extract(tmp_path / "p.zip", tmp_path / "z", password="pw9947")
    assert (tmp_path / "z" / "Top" / "a" / "x.txt").read_bytes() == b"secret"
    with pytest.raises(BenchError, match="wrong password"):
        extract(tmp_path / "p.zip", tmp_path / "z2", password="nope")
    with pytest.raises(BenchError, match="no password"):
        extract(tmp_path / "p.zip", tmp_path / "z3")
    (tmp_path / "r.rar").write_bytes(rar4_bytes({"D/t/a.txt": b"rar data"}))
    extract(tmp_path / "r.rar", tmp_path / "r")
    assert (tmp_path / "r" / "D" / "t" / "a.txt").read_bytes() == b"rar data"
    (tmp_path / "g.tar.gz").write_bytes(tar_bytes({"repo-abc/sub/keep.txt": b"k", "repo-abc/other.txt": b"o"}))
    extract(tmp_path / "g.tar.gz", tmp_path / "g", strip=1, subdir="sub")
    assert [p.name for p in (tmp_path / "g").rglob("*")] == ["keep.txt"]


# ------------------------------------------------------------------------------------------ pipeline rules

CHASE_URL = "https://staffnet.kingston.ac.uk/~ku15565/CHASE_DB1/assets/CHASEDB1.zip"


def chase_zip(n_images: int = 9, broken: str | None = None) -> bytes:
    files = {}
    for i in range(n_images):
        stem = f"Image_{i // 2 + 1:02d}{'LR'[i % 2]}"
        files[f"{stem}.jpg"] = png(np.full((4, 6, 3), i, np.uint8))  # content type does not matter to PIL
        files[f"{stem}_1stHO.png"] = png((np.arange(24).reshape(4, 6) % 2).astype(bool)) if stem != broken else b"broken"
    return zip_bytes(files)


def run_prepare(cli, server, tmp_path, spec_dir, *names, extra=()):
    return cli("prepare", *names, "--data-root", tmp_path / "data", "--mirror", server.url, "--specs", spec_dir,
               "--jobs", "1", *extra)


def test_rerun_skips_finished_dataset_and_a_failed_conversion_is_never_marked_done(cli, server, tmp_path):
    spec_dir = tmp_path / "specs"
    broken = chase_zip(broken="Image_05L")
    server.place(CHASE_URL, broken)
    name = make_test_spec(spec_dir, "chase_db1", 1, {})
    result = run_prepare(cli, server, tmp_path, spec_dir, name)
    assert result.exit_code == 1
    assert "cannot read the image" in result.output
    assert not (tmp_path / "data" / "CHASEDB1").exists()  # nothing half-converted is published

    good = chase_zip()
    server.place(CHASE_URL, good)
    (tmp_path / "data" / ".bench-downloads" / name / "CHASEDB1.zip").unlink()  # the user deletes the bad download
    (tmp_path / "data" / ".bench-downloads" / name / "CHASEDB1.zip.sha256").unlink()
    result = run_prepare(cli, server, tmp_path, spec_dir, name)
    assert result.exit_code == 0, result.output
    final = tmp_path / "data" / "CHASEDB1"
    marker = json.loads((final / ".bench-prepared.json").read_text())
    assert marker["dataset"] == name and marker["counts"] == {name: 1}
    assert sorted(p.name for p in (final / "annotations_detectron2" / "test").glob("*.png")) == ["Image_05L.png"]
    assert not (tmp_path / "data" / ".bench-prepare" / name).exists()
    assert not (tmp_path / "data" / ".bench-downloads" / name).exists()  # archives removed by default

    requests = len(server.log)
    result = run_prepare(cli, server, tmp_path, spec_dir, name)
    assert result.exit_code == 0 and "already prepared" in result.output
    assert len(server.log) == requests


def test_count_mismatch_fails_and_keeps_archives_when_asked(cli, server, tmp_path):
    spec_dir = tmp_path / "specs"
    data = chase_zip(n_images=10)
    server.place(CHASE_URL, data)
    name = make_test_spec(spec_dir, "chase_db1", 3, {"CHASEDB1.zip": sha(data)})  # 10 - 8 = 2 test images, not 3
    result = run_prepare(cli, server, tmp_path, spec_dir, name, extra=("--keep-archives",))
    assert result.exit_code == 1
    assert "2 image/label pairs, expected 3" in result.output
    assert not (tmp_path / "data" / "CHASEDB1").exists()
    (spec_dir / f"{name}.toml").write_text((spec_dir / f"{name}.toml").read_text().replace("num_images = 3", "num_images = 2"))
    result = run_prepare(cli, server, tmp_path, spec_dir, name, extra=("--keep-archives",))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / ".bench-downloads" / name / "CHASEDB1.zip").read_bytes() == data


def test_mirror_from_environment_and_existing_data_is_verified_not_redone(cli, server, tmp_path, monkeypatch):
    spec_dir = tmp_path / "specs"
    data = chase_zip()
    server.place(CHASE_URL, data)
    name = make_test_spec(spec_dir, "chase_db1", 1, {"CHASEDB1.zip": sha(data)})
    monkeypatch.setenv("CATSEG_BENCH_MIRROR", server.url)
    result = cli("prepare", name, "--data-root", tmp_path / "data", "--specs", spec_dir, "--jobs", "2")
    assert result.exit_code == 0, result.output
    final = tmp_path / "data" / "CHASEDB1"
    (final / ".bench-prepared.json").unlink()  # e.g. data prepared by MESS itself
    result = cli("prepare", name, "--data-root", tmp_path / "data", "--specs", spec_dir)
    assert result.exit_code == 0 and "verified and marked done" in result.output
    assert read(final / "annotations_detectron2" / "test" / "Image_05L.png").tolist() == (
        np.arange(24).reshape(4, 6) % 2).tolist()


def test_run_interrupted_while_deleting_raw_files_unpacks_again(tmp_path, monkeypatch):
    import shutil

    from catseg_bench.prepare.pipeline import Reporter, prepare_dataset
    from catseg_bench.specs import load_specs
    from spec_texts import SOLAR_SPEC

    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "solar.toml").write_text(
        SOLAR_SPEC.replace("num_images = 3", "num_images = 2").replace(
            "manual = true\n", 'manual = true\nfiles = [{ name = "solar.zip" }]\n'))
    spec = load_specs([spec_dir])["solar"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    label = png((np.arange(24).reshape(4, 6) % 3).astype(np.uint8))
    (downloads / "solar.zip").write_bytes(zip_bytes(
        {f"raw/{i}{ext}": data for i in range(2) for ext, data in ((".jpg", png(np.zeros((4, 6, 3), np.uint8))), (".png", label))}))

    def recipe(ctx):  # unpacks into solar/raw, copies into the spec's folders, deletes raw once verified
        ctx.extract("solar.zip", "solar")
        raw = ctx.top / "raw"
        for kind, suffix in (("images", ".jpg"), ("labels", ".png")):
            (ctx.top / kind).mkdir(exist_ok=True)
            for i in range(2):
                shutil.copy(raw / f"{i}{suffix}", ctx.top / kind / f"{i}{suffix}")
        ctx.remove_after_verify(raw)

    real_rmtree = shutil.rmtree

    def interrupted_rmtree(path, *args, **kwargs):
        if path.name == "raw":
            (path / "0.jpg").unlink()
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    def run():
        return prepare_dataset(spec, recipe, tmp_path / "data", downloads, Fetcher(), 1, True, Reporter())

    monkeypatch.setattr(shutil, "rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.undo()
    assert not (tmp_path / "data" / "solar").exists()
    outcome = run()
    assert outcome.status == "prepared" and outcome.counts == {"solar": 2}
    assert sorted(p.name for p in (tmp_path / "data" / "solar" / "images").iterdir()) == ["0.jpg", "1.jpg"]
    assert not (tmp_path / "data" / "solar" / "raw").exists()


def test_broken_cached_archive_is_set_aside_and_fetched_again_and_its_digest_offered_only_once_verified(cli, server, tmp_path):
    spec_dir = tmp_path / "specs"
    good = chase_zip()
    server.place(CHASE_URL, good[: len(good) // 2])  # a download cut short by the server: no digest to catch it
    name = make_test_spec(spec_dir, "chase_db1", 1, {})
    result = run_prepare(cli, server, tmp_path, spec_dir, name)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "moved aside to CHASEDB1.zip.broken-" in output and "rerun `bench prepare` to download it again" in output
    assert "record it as sha256" not in output  # the digest of a broken archive is never offered for recording
    downloads = tmp_path / "data" / ".bench-downloads" / name
    assert not (downloads / "CHASEDB1.zip").exists() and not (downloads / "CHASEDB1.zip.sha256").exists()
    assert len(list(downloads.glob("CHASEDB1.zip.broken-*"))) == 1

    server.place(CHASE_URL, good)
    result = run_prepare(cli, server, tmp_path, spec_dir, name)  # no hand work: the next run downloads again
    assert result.exit_code == 0, result.output
    assert f'record it as sha256 = "{sha(good)}"' in " ".join(result.output.split())
