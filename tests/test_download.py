"""Tests of speechrnn.download against a local HTTP server and archives built on the fly."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn.download import (
    DATASETS,
    DatasetArchive,
    DownloadError,
    download_command,
    download_file,
    download_speech_commands,
    extract_archive,
)
from speechrnn.errors import SpeechRNNError

pytestmark = pytest.mark.timeout(60)

# --------------------------------------------------------------------------------------------
# a tiny Speech Commands archive and an HTTP server for it
# --------------------------------------------------------------------------------------------

WORDS = ("yes", "no", "_background_noise_")


def _wav_bytes(seed: int) -> bytes:
    """0.25 s of 16 kHz noise as a 16-bit WAV: incompressible, so the archive has some size."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, 4000).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, noise, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_speech_commands_archive() -> bytes:
    """A speech-commands-like tar.gz, members at the top level like Google's archives."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for word in WORDS:
            directory = tarfile.TarInfo(f"./{word}")
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            tar.addfile(directory)
        _add_bytes(tar, "./yes/abc_nohash_0.wav", _wav_bytes(0))
        _add_bytes(tar, "./yes/abc_nohash_1.wav", _wav_bytes(1))
        _add_bytes(tar, "./no/def_nohash_0.wav", _wav_bytes(2))
        _add_bytes(tar, "./_background_noise_/white_noise.wav", _wav_bytes(3))
        _add_bytes(tar, "./validation_list.txt", b"yes/abc_nohash_1.wav\n")
        _add_bytes(tar, "./testing_list.txt", b"no/def_nohash_0.wav\n")
        _add_bytes(tar, "./LICENSE", b"CC BY 4.0\n")
    return buf.getvalue()


@dataclass
class ServerState:
    """What the handler serves and what it saw."""

    payload: bytes
    support_range: bool = True
    cut_first_request_after: int | None = None  # close the connection after this many bytes
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``state.payload`` at every path but ``/missing``; honours ``Range: bytes=N-``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append({k.lower(): v for k, v in self.headers.items()})
            first = len(state.requests) == 1
        if self.path == "/missing":
            self.send_error(404, "Not Found")
            return
        data = state.payload
        start = 0
        range_header = self.headers.get("Range")
        if range_header and state.support_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if first and state.cut_first_request_after is not None:
            self.wfile.write(body[: state.cut_first_request_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@dataclass
class Server:
    state: ServerState
    url: str  # the archive's address

    def sha256(self) -> str:
        return hashlib.sha256(self.state.payload).hexdigest()


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return build_speech_commands_archive()


@pytest.fixture
def server(archive_bytes: bytes) -> Iterator[Server]:
    state = ServerState(payload=archive_bytes)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield Server(state=state, url=f"http://{host}:{port}/speech_commands_test.tar.gz")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# --------------------------------------------------------------------------------------------
# downloads
# --------------------------------------------------------------------------------------------


def test_full_download_checksum_and_extract(tmp_path: Path, server: Server) -> None:
    archive = tmp_path / "dl" / "sc.tar.gz"

    got = download_file(
        server.url, archive, expected_size=len(server.state.payload), sha256=server.sha256(), progress=False
    )

    assert got == archive
    assert archive.read_bytes() == server.state.payload
    assert not archive.with_name("sc.tar.gz.part").exists()
    assert "range" not in server.state.requests[0]

    data = extract_archive(archive, tmp_path / "data", progress=False)
    assert data == tmp_path / "data"
    assert {"yes/abc_nohash_0.wav", "no/def_nohash_0.wav", "validation_list.txt", "LICENSE"} <= files_under(data)
    assert (data / "validation_list.txt").read_text() == "yes/abc_nohash_1.wav\n"
    assert sf.info(str(data / "yes" / "abc_nohash_0.wav")).frames == 4000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_existing_verified_file_is_not_downloaded_again(tmp_path: Path, server: Server) -> None:
    archive = tmp_path / "sc.tar.gz"
    archive.write_bytes(server.state.payload)
    download_file(server.url, archive, sha256=server.sha256().upper(), progress=False)
    assert server.state.requests == []
    with pytest.raises(DownloadError, match="already exists but has SHA-256"):
        download_file(server.url, archive, sha256="0" * 64, progress=False)


def test_interrupted_download_resumes_with_range(tmp_path: Path, server: Server) -> None:
    server.state.cut_first_request_after = 1000
    archive = tmp_path / "sc.tar.gz"
    part = tmp_path / "sc.tar.gz.part"
    size = len(server.state.payload)

    with pytest.raises(DownloadError, match="run again to resume") as caught:
        download_file(server.url, archive, expected_size=size, sha256=server.sha256(), progress=False)
    assert "\n" not in str(caught.value)
    assert part.stat().st_size == 1000
    assert not archive.exists()

    download_file(server.url, archive, expected_size=size, sha256=server.sha256(), progress=False)

    assert len(server.state.requests) == 2
    assert server.state.requests[1]["range"] == "bytes=1000-"
    assert archive.read_bytes() == server.state.payload
    assert not part.exists()


def test_server_without_range_support_restarts_from_zero(tmp_path: Path, server: Server) -> None:
    server.state.support_range = False
    part = tmp_path / "sc.tar.gz.part"
    part.write_bytes(b"stale bytes from another file")

    download_file(server.url, tmp_path / "sc.tar.gz", sha256=server.sha256(), progress=True)

    assert server.state.requests[0]["range"] == f"bytes={len(b'stale bytes from another file')}-"
    assert (tmp_path / "sc.tar.gz").read_bytes() == server.state.payload


def test_complete_part_file_is_finished_without_downloading(tmp_path: Path, server: Server) -> None:
    (tmp_path / "sc.tar.gz.part").write_bytes(server.state.payload)
    size = len(server.state.payload)
    download_file(server.url, tmp_path / "sc.tar.gz", expected_size=size, sha256=server.sha256(), progress=False)
    assert server.state.requests == []
    assert (tmp_path / "sc.tar.gz").read_bytes() == server.state.payload


def test_part_longer_than_the_file_is_discarded(tmp_path: Path, server: Server) -> None:
    part = tmp_path / "sc.tar.gz.part"
    part.write_bytes(server.state.payload + b"junk")
    with pytest.raises(DownloadError, match="longer than the file"):
        download_file(server.url, tmp_path / "sc.tar.gz", progress=False)
    assert not part.exists()
    download_file(server.url, tmp_path / "sc.tar.gz", sha256=server.sha256(), progress=False)


def test_wrong_checksum_deletes_the_download(tmp_path: Path, server: Server) -> None:
    archive = tmp_path / "sc.tar.gz"
    with pytest.raises(DownloadError, match="SHA-256") as caught:
        download_file(server.url, archive, sha256="ab" * 32, progress=False)
    assert isinstance(caught.value, SpeechRNNError)
    assert "\n" not in str(caught.value)
    assert not archive.exists()
    assert not (tmp_path / "sc.tar.gz.part").exists()


def test_wrong_size_deletes_the_download(tmp_path: Path, server: Server) -> None:
    archive = tmp_path / "sc.tar.gz"
    with pytest.raises(DownloadError, match="bytes instead of"):
        download_file(server.url, archive, expected_size=len(server.state.payload) + 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_download_error(tmp_path: Path, server: Server) -> None:
    url = server.url.rsplit("/", 1)[0] + "/missing"
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download_file(url, tmp_path / "x.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_download_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "x.tar.gz", progress=False, timeout=5)


def test_download_speech_commands_once(tmp_path: Path, server: Server) -> None:
    folder = download_speech_commands("v0.02", tmp_path, url=server.url, progress=False)

    assert folder == tmp_path / "speech_commands_v0.02"
    assert {"yes/abc_nohash_0.wav", "testing_list.txt", "_background_noise_/white_noise.wav"} <= files_under(folder)
    assert len(server.state.requests) == 1
    assert download_speech_commands("v0.02", tmp_path, url=server.url, progress=False) == folder
    assert len(server.state.requests) == 1  # already extracted: no network


def test_download_command(tmp_path: Path, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert download_command(version="v0.01", root=tmp_path, url=server.url, progress=False) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "speech_commands_v0.01")

    bad = server.url.rsplit("/", 1)[0] + "/missing"
    assert download_command(version="v0.02", root=tmp_path, url=bad, progress=False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP error 404" in err

    assert download_command(version="v9", root=tmp_path, url=None, progress=False) == 1
    assert "unknown Speech Commands version 'v9'" in capsys.readouterr().err


def test_a_corrupt_archive_from_a_mirror_is_deleted_so_a_rerun_downloads_again(
    tmp_path: Path, server: Server, archive_bytes: bytes
) -> None:
    """A mirror that served a cut-off archive (or a web page) must not leave it to fail every rerun."""
    server.state.payload = archive_bytes[: len(archive_bytes) // 2]
    with pytest.raises(DownloadError, match=r"corrupt or truncated archive.*deleted it: run again"):
        download_speech_commands("v0.02", tmp_path, url=server.url, progress=False)
    assert not (tmp_path / "speech_commands_v0.02.tar.gz").exists()
    server.state.payload = archive_bytes  # the mirror is mended: the same command now works
    folder = download_speech_commands("v0.02", tmp_path, url=server.url, progress=False)
    assert "yes/abc_nohash_0.wav" in files_under(folder)


@pytest.mark.parametrize("url", ["", "ftp//nonsense", "example.org/x.tar.gz"])
def test_an_address_that_is_not_a_url_is_one_line(tmp_path: Path, url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert download_command(version="v0.02", root=tmp_path / "root", url=url, progress=False) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a download address" in err
    assert not (tmp_path / "root").exists()  # nothing created for it


def test_dataset_table() -> None:
    assert set(DATASETS) == {"v0.01", "v0.02"}
    assert DATASETS["v0.01"].url == "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz"
    assert DATASETS["v0.01"].size == 1489096277
    assert DATASETS["v0.02"].url == "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
    assert DATASETS["v0.02"].size == 2428923189
    for spec in DATASETS.values():
        assert isinstance(spec, DatasetArchive)
        assert spec.sha256 is None or (len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0)
    with pytest.raises(TypeError):
        DATASETS["v9"] = DATASETS["v0.01"]  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# unsafe archives
# --------------------------------------------------------------------------------------------


def _entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tuple:
    return name, kind, linkname, data


def _write_tar(path: Path, entries: list[tuple]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, linkname, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = linkname
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def _parent_escape(outside: Path) -> list[tuple]:
    return [_entry("./yes/ok.txt", data=b"fine"), _entry("../evil.txt", data=b"evil")]


def _deep_parent_escape(outside: Path) -> list[tuple]:
    return [_entry("yes/../../evil.txt", data=b"evil")]


def _absolute_path(outside: Path) -> list[tuple]:
    return [_entry(str(outside / "evil.txt"), data=b"evil")]


def _symlink_to_etc(outside: Path) -> list[tuple]:
    return [_entry("etc", tarfile.SYMTYPE, "/etc")]


def _relative_symlink_out(outside: Path) -> list[tuple]:
    return [_entry("up", tarfile.SYMTYPE, "../..")]


def _write_through_symlink(outside: Path) -> list[tuple]:
    # a link that looks harmless by itself (if the checker only looked at names), then a file through it
    return [_entry("out", tarfile.SYMTYPE, str(outside)), _entry("out/evil.txt", data=b"evil")]


def _hardlink_to_passwd(outside: Path) -> list[tuple]:
    return [_entry("passwd", tarfile.LNKTYPE, "/etc/passwd")]


def _hardlink_up(outside: Path) -> list[tuple]:
    return [_entry("victim", tarfile.LNKTYPE, "../outside/victim.txt")]


def _device(outside: Path) -> list[tuple]:
    return [_entry("null", tarfile.CHRTYPE)]


def _fifo(outside: Path) -> list[tuple]:
    return [_entry("pipe", tarfile.FIFOTYPE)]


MALICIOUS: list[tuple[Callable[[Path], list[tuple]], str]] = [
    (_parent_escape, "../evil.txt"),
    (_deep_parent_escape, "yes/../../evil.txt"),
    (_absolute_path, "evil.txt"),
    (_symlink_to_etc, "'etc'"),
    (_relative_symlink_out, "'up'"),
    (_write_through_symlink, "'out'"),
    (_hardlink_to_passwd, "'passwd'"),
    (_hardlink_up, "'victim'"),
    (_device, "'null'"),
    (_fifo, "'pipe'"),
]


@pytest.mark.parametrize(("make", "member"), MALICIOUS, ids=[m.__name__.lstrip("_") for m, _ in MALICIOUS])
def test_malicious_archive_is_refused(tmp_path: Path, make: Callable[[Path], list[tuple]], member: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched")
    work = tmp_path / "work"
    work.mkdir()
    archive = _write_tar(tmp_path / "evil.tar.gz", make(outside))
    target = work / "data"

    with pytest.raises(DownloadError, match="refusing member") as caught:
        extract_archive(archive, target, progress=False)

    assert member in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not target.exists()
    assert list(work.iterdir()) == []  # the staging folder is gone too
    assert files_under(outside) == {"victim.txt"}
    assert (outside / "victim.txt").read_text() == "untouched"
    assert not (tmp_path / "evil.txt").exists()


def test_safe_links_inside_the_archive_are_kept(tmp_path: Path) -> None:
    archive = _write_tar(
        tmp_path / "links.tar.gz",
        [
            _entry("yes", tarfile.DIRTYPE),
            _entry("yes/a.txt", data=b"a"),
            _entry("alias", tarfile.SYMTYPE, "yes/a.txt"),
            _entry("copy", tarfile.LNKTYPE, "yes/a.txt"),
        ],
    )
    data = extract_archive(archive, tmp_path / "data", progress=False)
    assert (data / "alias").is_symlink()
    assert (data / "alias").read_text() == "a"
    assert (data / "copy").read_text() == "a"


def test_extract_refuses_an_existing_target(tmp_path: Path, archive_bytes: bytes) -> None:
    archive = tmp_path / "sc.tar.gz"
    archive.write_bytes(archive_bytes)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="already exists"):
        extract_archive(archive, tmp_path / "data", progress=False)
    assert files_under(tmp_path / "data") == {"mine.txt"}


@pytest.mark.parametrize("content", [b"this is not a tar archive", b"cut"], ids=["garbage", "truncated"])
def test_corrupt_archive_is_a_download_error(tmp_path: Path, archive_bytes: bytes, content: bytes) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(archive_bytes[: len(archive_bytes) // 2] if content == b"cut" else content)
    with pytest.raises(DownloadError, match="corrupt or truncated archive"):
        extract_archive(archive, tmp_path / "data", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_cli_download_command_through_argv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from speechrnn.cli import main

    status = main(["download", "--root", str(tmp_path), "--url", "http://127.0.0.1:9/none.tar.gz", "--quiet"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechrnn download: error:")


@pytest.mark.skipif(os.name != "posix", reason="process ids are probed with POSIX signals")
def test_what_a_killed_extraction_left_is_removed_by_the_next(tmp_path: Path, archive_bytes: bytes) -> None:
    """An extraction killed outright leaves its hidden staging folder; the next one deletes it, not a live one's."""
    archive = tmp_path / "sc.tar.gz"
    archive.write_bytes(archive_bytes)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".data.extracting-pid{int(gone.stdout)}-0a0b0c0d"
    (dead / "yes").mkdir(parents=True)
    (dead / "yes" / "half.wav").write_bytes(b"RIFF")
    live = tmp_path / f".data.extracting-pid{os.getpid()}-01020304"
    live.mkdir()
    extract_archive(archive, tmp_path / "data", progress=False)
    assert not dead.exists() and live.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".data.")) == [live.name]
