"""Download Google's Speech Commands archives and extract them safely.

Downloads go through :mod:`urllib` into ``<dest>.part`` and resume with an HTTP ``Range``
request when that file is already there; the finished file is checked (size, SHA-256) and then
renamed into place. Archives are extracted member by member into a temporary folder next to the
target, refusing any member that would land outside it (absolute paths, ``..``, links leading
out, device files), and the folder is renamed to the target only when everything went well.

Every failure a user can cause raises :class:`DownloadError` with a one-line message.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import secrets
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType

from tqdm import tqdm

from speechrnn import __version__
from speechrnn.errors import SpeechRNNError

__all__ = [
    "DATASETS",
    "DatasetArchive",
    "DownloadError",
    "download_command",
    "download_file",
    "download_speech_commands",
    "extract_archive",
]


class DownloadError(SpeechRNNError):
    """A download, a checksum or an archive extraction failed; the message is one line."""


class CorruptArchiveError(DownloadError):
    """The archive is not a readable ``.tar.gz`` (cut short, or not an archive at all)."""


@dataclass(frozen=True, slots=True)
class DatasetArchive:
    """Where a dataset archive lives and how to recognize it.

    Attributes
    ----------
    url : str
        Download address.
    size : int or None
        Size of the archive in bytes, or None when unknown.
    sha256 : str or None
        Lower-case hex SHA-256 digest of the archive, or None when unknown (only the size is
        checked then).
    """

    url: str
    size: int | None
    sha256: str | None = None


# The SHA-256 digests are the ones torchaudio's SPEECHCOMMANDS dataset verifies on every
# download of these same URLs (torchaudio/datasets/speechcommands.py, ``_CHECKSUMS``).
DATASETS: Mapping[str, DatasetArchive] = MappingProxyType(
    {
        "v0.01": DatasetArchive(
            url="http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
            size=1489096277,
            sha256="743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        ),
        "v0.02": DatasetArchive(
            url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            size=2428923189,
            sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        ),
    }
)
"""The Speech Commands releases, by version (read-only mapping)."""

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_CONTENT_RANGE_TOTAL = re.compile(r"^\s*bytes\s+(?:\*|\d+-\d+)/(\d+)\s*$", re.IGNORECASE)
_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download.

    Bytes go to ``dest`` + ``".part"``. When that file exists, the request carries
    ``Range: bytes=N-`` and the server's ``206 Partial Content`` answer is appended; a ``200``
    answer (no range support) restarts from zero. When the transfer completes, size and
    SHA-256 are checked and the ``.part`` file is renamed to ``dest`` (atomically, same folder).
    An interrupted transfer leaves the ``.part`` file for the next call to resume.

    Parameters
    ----------
    url : str
        ``http://``, ``https://`` (or ``file://``) address.
    dest : pathlib.Path
        Final file; its folder is created when missing. When ``dest`` already exists and passes
        the checks it is returned without any network access.
    expected_size : int or None, keyword-only
        Size in bytes the file must have.
    sha256 : str or None, keyword-only
        Hex SHA-256 digest the file must have (case-insensitive).
    progress : bool, keyword-only
        Show a tqdm progress bar on stderr (default True).
    chunk_size : int, keyword-only
        Bytes read per network read, default 1 MiB.
    timeout : float, keyword-only
        Socket timeout in seconds for connecting and for each read (default 30).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DownloadError
        HTTP or network failure, interrupted transfer (``.part`` kept), or a size/checksum
        mismatch (``.part`` deleted).
    """
    dest = Path(dest)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"{url!r}: not a download address (use http://, https:// or file://)")
    want_hash = sha256.lower() if sha256 else None
    if dest.exists():
        problem = _verify(dest, expected_size, want_hash)
        if problem:
            raise DownloadError(f"{dest}: already exists but {problem}; delete it and run again")
        return dest
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.exists() else 0
    except OSError as exc:
        raise DownloadError(f"{dest}: cannot write there ({_os_reason(exc)})") from None
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is None or offset < expected_size:
        _fetch(url, part, offset, progress=progress, chunk_size=chunk_size, timeout=timeout)
    problem = _verify(part, expected_size, want_hash)
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: downloaded file {problem}; the partial file was deleted")
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise DownloadError(f"{dest}: cannot move the download into place ({_os_reason(exc)})") from None
    return dest


def _fetch(url: str, part: Path, offset: int, *, progress: bool, chunk_size: int, timeout: float) -> None:
    """Append the bytes of ``url`` from ``offset`` on to ``part`` (restarting when needed)."""
    headers = {"User-Agent": f"speechrnn/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    received = 0
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            status = getattr(resp, "status", 200) or 200
            if offset and status == 206:
                start = _range_start(resp.headers.get("Content-Range"))
                if start != offset:
                    raise DownloadError(
                        f"{url}: server resumed at byte {start} instead of {offset}; delete {part.name} and run again"
                    )
            else:
                offset = 0  # 200 OK: the server sends the whole file, start over
            length_header = resp.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            total = offset + length if length is not None else None
            with (
                open(part, "ab" if offset else "wb") as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=part.name.removesuffix(".part"),
                    disable=not progress,
                    file=sys.stderr,
                    dynamic_ncols=True,
                ) as bar,
            ):
                while True:
                    chunk = resp.read(chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the .part is complete, or bad
            size = _range_total(exc.headers.get("Content-Range") if exc.headers else None)
            if size is None or size == offset:
                return  # the checks that follow decide
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: partial download ({offset} bytes) is longer than the file ({size} bytes); "
                "deleted it, run again"
            ) from None
        raise DownloadError(f"{url}: HTTP error {exc.code} {_one_line(str(exc.reason))}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason if not isinstance(exc.reason, OSError) else _os_reason(exc.reason)
        raise DownloadError(f"{url}: cannot connect ({_one_line(str(reason))})") from None
    except (http.client.HTTPException, OSError) as exc:  # includes timeouts and resets
        raise DownloadError(
            f"{url}: download interrupted after {offset + received} bytes "
            f"({_one_line(_os_reason(exc) if isinstance(exc, OSError) else repr(exc))}); run again to resume"
        ) from None
    if length is not None and received < length:
        raise DownloadError(
            f"{url}: connection closed after {offset + received} of {offset + length} bytes; run again to resume"
        )


def _range_start(content_range: str | None) -> int | None:
    """First byte of a ``Content-Range: bytes START-END/TOTAL`` header, or None."""
    match = _CONTENT_RANGE.match(content_range or "")
    return int(match.group(1)) if match else None


def _range_total(content_range: str | None) -> int | None:
    """TOTAL of a ``Content-Range: bytes */TOTAL`` (416 answer) header, or None."""
    match = _CONTENT_RANGE_TOTAL.match(content_range or "")
    return int(match.group(1)) if match else None


def _verify(path: Path, expected_size: int | None, sha256: str | None) -> str | None:
    """Describe how ``path`` differs from the expectations, or None when it matches."""
    if not path.is_file():
        return "is not a regular file"
    try:
        size = path.stat().st_size
        if expected_size is not None and size != expected_size:
            return f"has {size} bytes instead of {expected_size}"
        if sha256 is None:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(_HASH_CHUNK):
                digest.update(block)
    except OSError as exc:
        return f"cannot be read ({_os_reason(exc)})"
    if digest.hexdigest() != sha256:
        return f"has SHA-256 {digest.hexdigest()} instead of {sha256}"
    return None


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------


def extract_archive(archive: Path, target: Path, *, progress: bool = True) -> Path:
    """Extract a tar(.gz) archive into the new folder ``target``, refusing unsafe members.

    Members are checked one by one before they are written: each must resolve inside the
    destination (no absolute paths, no ``..``, no symbolic or hard link leading outside, no
    link followed out of it), and only files, folders and links are allowed (no devices,
    FIFOs). Python's ``filter="data"`` is applied on top where available. Everything goes to a
    temporary folder next to ``target``, renamed to ``target`` at the end; on any failure that
    folder is removed and ``target`` is not created.

    Parameters
    ----------
    archive : pathlib.Path
        A tar file, optionally gzip/bzip2/xz-compressed.
    target : pathlib.Path
        Folder to create; it must not exist. Its parent is created when missing.
    progress : bool, keyword-only
        Show a tqdm progress bar (compressed bytes read) on stderr.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    DownloadError
        ``target`` exists, the archive is missing, corrupt or truncated, or a member is unsafe
        (the message names it).
    """
    archive = Path(archive)
    target = Path(target)
    if target.exists() or target.is_symlink():
        raise DownloadError(f"{target}: already exists; remove it or choose another folder")
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_staging(target)
        staging = _make_staging_dir(target)
    except OSError as exc:
        raise DownloadError(f"{target}: cannot create it ({_os_reason(exc)})") from None
    try:
        _extract_members(archive, staging, progress=progress)
        if target.exists() or target.is_symlink():
            raise DownloadError(f"{target}: appeared while extracting; not overwritten")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.extracting-pid"


def _make_staging_dir(target: Path) -> Path:
    """Create an empty hidden folder next to ``target`` (normal permissions, unique name, our process id in it)."""
    while True:
        staging = target.parent / f"{_staging_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def _remove_abandoned_staging(target: Path) -> None:
    """Delete the staging folders of ``target`` that killed extractions left (their process is gone).

    A full data set is gigabytes; an extraction killed outright (SIGKILL, power loss) cannot clean
    up after itself, so the next one does. Folders of live processes are left alone, and so is
    everything on systems without POSIX signals (where probing a process id is not harmless).
    """
    if os.name != "posix":
        return
    prefix = _staging_prefix(target)
    for leftover in target.parent.iterdir():
        if not leftover.name.startswith(prefix) or not leftover.is_dir() or leftover.is_symlink():
            continue
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except OSError:  # alive but another user's, or not ours to probe
            continue


def _extract_members(archive: Path, staging: Path, *, progress: bool) -> None:
    root = staging.resolve()
    use_data_filter = hasattr(tarfile, "data_filter")
    try:
        with (
            open(archive, "rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
            tqdm(
                total=archive.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"extracting {archive.name}",
                disable=not progress,
                file=sys.stderr,
                dynamic_ncols=True,
            ) as bar,
        ):
            for member in tar:
                problem = _unsafe_member(member, root)
                if problem:
                    raise DownloadError(f"{archive}: refusing member {member.name!r} ({problem})")
                try:
                    if use_data_filter:
                        tar.extract(member, staging, set_attrs=True, filter="data")
                    else:
                        tar.extract(member, staging, set_attrs=False)
                except tarfile.FilterError as exc:
                    raise DownloadError(f"{archive}: refusing member {member.name!r} ({_one_line(str(exc))})") from None
                bar.update(max(0, raw.tell() - bar.n))
    except DownloadError:
        raise
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as exc:
        raise CorruptArchiveError(f"{archive}: corrupt or truncated archive ({_one_line(str(exc))})") from None
    except OSError as exc:
        raise DownloadError(f"{archive}: extraction failed ({_os_reason(exc)})") from None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _bad_name(name: str) -> str | None:
    """Why an archive path is unsafe on its face (absolute, drive, ``..``), or None."""
    if not name:
        return "empty name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "path with '..'"
    return None


def _unsafe_member(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why extracting ``member`` under ``root`` (resolved) would be unsafe, or None."""
    problem = _bad_name(member.name)
    if problem:
        return problem
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "device, FIFO or other special file"
    dest = (root / member.name).resolve()  # follows links extracted earlier
    if not _inside(dest, root):
        return "resolves outside the target folder"
    if member.issym():
        if member.linkname.startswith(("/", "\\")) or PureWindowsPath(member.linkname).drive:
            return f"symbolic link to absolute path {member.linkname!r}"
        link_target = (root / PurePosixPath(member.name).parent / member.linkname).resolve()
        if not _inside(link_target, root):
            return f"symbolic link to {member.linkname!r} outside the target folder"
    if member.islnk():
        problem = _bad_name(member.linkname)
        if problem:
            return f"hard link to {member.linkname!r}: {problem}"
        if not _inside((root / member.linkname).resolve(), root):
            return f"hard link to {member.linkname!r} outside the target folder"
    return None


# --------------------------------------------------------------------------------------------
# Speech Commands
# --------------------------------------------------------------------------------------------


def download_speech_commands(
    version: str,
    root: Path,
    *,
    url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download and extract a Speech Commands release under ``root`` (once).

    Parameters
    ----------
    version : str
        A key of :data:`DATASETS` (``"v0.01"`` or ``"v0.02"``).
    root : pathlib.Path
        Folder holding the archive ``speech_commands_<version>.tar.gz`` (kept after
        extraction) and the extracted ``speech_commands_<version>/``.
    url : str or None, keyword-only
        Download from this address instead (a mirror, or a test server). The known size and
        checksum of the official archive are then not enforced, since the file may be packed
        differently.
    progress : bool, keyword-only
        Show progress bars on stderr.

    Returns
    -------
    pathlib.Path
        ``root / f"speech_commands_{version}"``, the folder with ``yes/``, ``no/``, ...,
        ``validation_list.txt`` and ``testing_list.txt``. Returned at once when it already exists.

    Raises
    ------
    DownloadError
        Unknown version, or any failure of :func:`download_file` / :func:`extract_archive`.
    """
    if version not in DATASETS:
        raise DownloadError(f"unknown Speech Commands version {version!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[version]
    root = Path(root)
    target = root / f"speech_commands_{version}"
    if target.is_dir():
        return target
    archive = root / f"speech_commands_{version}.tar.gz"
    if url is None:
        download_file(spec.url, archive, expected_size=spec.size, sha256=spec.sha256, progress=progress)
    else:
        download_file(url, archive, progress=progress)
    try:
        return extract_archive(archive, target, progress=progress)
    except CorruptArchiveError as exc:  # kept, every later run would fail on it the same way
        archive.unlink(missing_ok=True)
        raise CorruptArchiveError(f"{exc}; deleted it: run again to download it anew") from None


def download_command(*, version: str, root: Path, url: str | None, progress: bool) -> int:
    """Run ``speechrnn download``: fetch a release and print the data folder.

    Parameters
    ----------
    version : str
        Speech Commands version (``"v0.01"`` or ``"v0.02"``).
    root : pathlib.Path
        Folder to download and extract into.
    url : str or None
        Mirror address overriding the official one.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    int
        Exit status: 0 on success (the data folder is printed on stdout), 1 after printing a
        one-line error on stderr.
    """
    try:
        folder = download_speech_commands(version, Path(root), url=url, progress=progress)
    except DownloadError as exc:
        print(f"speechrnn download: error: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn download``."""
    parser.add_argument("--version", dest="dataset_version", choices=sorted(DATASETS), default="v0.02",
                        help="Speech Commands release (default: v0.02, 35 words)")
    parser.add_argument("--root", type=Path, default=Path("data"),
                        help="folder to download and extract into (default: ./data)")
    parser.add_argument("--url", help="mirror address of the archive (size and checksum are then not checked)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``speechrnn download`` from parsed arguments."""
    return download_command(version=args.dataset_version, root=args.root, url=args.url,
                            progress=not args.quiet and sys.stderr.isatty())


def _os_reason(exc: OSError) -> str:
    return _one_line(exc.strerror or str(exc) or type(exc).__name__)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
