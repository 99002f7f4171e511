"""Helpers for the `bench prepare` tests (no tests here): a local mirror server on 127.0.0.1,
writers for the archive formats the datasets ship in, and test specs built from the real ones.

The server serves a folder laid out as a `--mirror` root (``<root>/<host>/<path>``), answers
``Range`` requests, lists folders (for Drive folders), and can be told to cut a file off after N
bytes (once), or to answer a path with a Drive-style HTML page.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import threading
import tomllib
import zipfile
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ server


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root)
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before the connection drops (once)
        self.pages: dict[str, tuple[str, bytes]] = {}  # path?query -> (content type, body)
        self.log: list[tuple[str, str | None]] = []  # (path?query, Range header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def place(self, url: str, data: bytes) -> Path:
        """Put `data` where the mirror maps `url` (host + path under the root)."""
        parts = urlsplit(url)
        path = self.root / parts.netloc / unquote(parts.path).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def place_folder(self, url: str, files: dict[str, bytes]) -> None:
        for relpath, data in files.items():
            self.place(url.rstrip("/") + "/" + relpath, data)


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(args[2].root), **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        server: MirrorServer = self.server
        server.log.append((self.path, self.headers.get("Range")))
        if self.path in server.pages:
            content_type, body = server.pages[self.path]
            self._send(200, body, {"Content-Type": content_type})
            return
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            if not self.path.split("?")[0].endswith("/"):
                self.send_response(301)
                self.send_header("Location", self.path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            listing = self.list_directory(str(path))  # sends the headers, returns the body
            self.wfile.write(listing.read())
            listing.close()
            return
        if not path.is_file():
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        data = path.read_bytes()
        start = 0
        status = 200
        headers = {"Content-Type": "application/octet-stream"}
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            start = int(wanted[6:].split("-")[0])
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        key = self.path.split("?")[0]
        if key in server.cut_after:
            keep = server.cut_after.pop(key)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:keep])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._send(status, body, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_server(root: Path) -> MirrorServer:
    server = MirrorServer(root)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


# ------------------------------------------------------------------------------------------ files


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array), mode).save(buffer, "PNG")
    return buffer.getvalue()


def encoded(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array))
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zipcrypto_keys(password: bytes):
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = zlib.crc32(bytes([byte]), keys[0] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        keys[1] = (keys[1] + (keys[0] & 0xFF)) & 0xFFFFFFFF
        keys[1] = (keys[1] * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = zlib.crc32(bytes([keys[1] >> 24]), keys[2] ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    for byte in password:
        update(byte)

    def encrypt(data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            temp = (keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            update(byte)
        return bytes(out)

    return encrypt


def encrypted_zip_bytes(files: dict[str, bytes], password: str) -> bytes:
    """A zip with traditional PKWARE encryption (what `zip -P` / FoodSeg103 use), stored entries."""
    out = io.BytesIO()
    central = []
    for index, (name, data) in enumerate(files.items()):
        crc = zlib.crc32(data)
        encrypt = _zipcrypto_keys(password.encode())
        header = bytes(range(11)) + bytes([crc >> 24])
        payload = encrypt(header) + encrypt(data)
        encoded_name = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0x21, crc, len(payload), len(data), len(encoded_name), 0))
        out.write(encoded_name)
        out.write(payload)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 1, 0, 0, 0x21, crc, len(payload), len(data),
                                   len(encoded_name), 0, 0, 0, 0, 0, offset) + encoded_name)
    start = out.tell()
    for record in central:
        out.write(record)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), size, start, 0))
    return out.getvalue()


def rar4_bytes(files: dict[str, bytes]) -> bytes:
    """A RAR 4 archive with stored (uncompressed) entries: marker, main header, file headers, end."""

    def block(head_type: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
        size = 7 + len(body)
        rest = struct.pack("<BHH", head_type, flags, size) + body
        crc = zlib.crc32(rest) & 0xFFFF
        return struct.pack("<H", crc) + rest + data

    out = b"Rar!\x1a\x07\x00"
    out += block(0x73, 0, struct.pack("<HI", 0, 0))
    for name, data in files.items():
        encoded_name = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x21 << 16, 29, 0x30,
                           len(encoded_name), 0o100644) + encoded_name
        out += block(0x74, 0x8000, body, data)
    out += block(0x7B, 0x4000, b"")
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ specs


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def make_test_spec(spec_dir: Path, real: str, num_images: int, digests: dict[str, str]) -> str:
    """Write `<real>_t.toml`: the real spec with its name, count and file digests replaced.

    The [prepare] table keeps the real URLs and names (so the real download path is what is
    tested) and gains `recipe = <real>`; `digests` maps file names to the test archives' sha256.
    The real labels' record (fingerprint, pixel counts) goes: tiny test sources do not hold them.
    """
    text = real_spec_path(real).read_text()
    raw = tomllib.loads(text)
    name = f"{real}_t"
    kept, in_prepare = [], False
    for line in text.split("\n"):  # [prepare] and its sub-tables go; the one [prepare] below holds them inline
        if line.startswith("["):
            in_prepare = line == "[prepare]" or line.startswith("[prepare.")
        if not in_prepare and not line.startswith(("label_fingerprint", "class_pixel_counts", "ignore_pixel_count")):
            kept.append(line)
    text = "\n".join(kept)
    text = text.replace(f'name = "{real}"', f'name = "{name}"', 1)
    text = text.replace(f"num_images = {raw['num_images']}", f"num_images = {num_images}", 1)
    prepare = dict(raw["prepare"])
    prepare["recipe"] = real
    files = []
    for entry in prepare.get("files", []):
        entry = dict(entry)
        file_name = entry.get("name") or entry["url"].rstrip("/").rsplit("/", 1)[-1]
        if file_name in digests:
            entry["sha256"] = digests[file_name]
        files.append(entry)
    prepare["files"] = files
    table = "\n[prepare]\n" + "\n".join(f"{k} = {_toml_value(v)}" for k, v in prepare.items()) + "\n"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / f"{name}.toml").write_text(text + table)
    return name


def real_spec_path(real: str) -> Path:
    """A built-in spec: a MESS dataset in dataset_specs/, or a training set in dataset_specs/training/."""
    path = REPO / "dataset_specs" / f"{real}.toml"
    return path if path.is_file() else REPO / "dataset_specs" / "training" / f"{real}.toml"


def real_files(real: str) -> list[dict]:
    return tomllib.loads(real_spec_path(real).read_text())["prepare"]["files"]


def read(path: Path) -> np.ndarray:
    return np.array(Image.open(path))

