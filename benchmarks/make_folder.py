"""Build the benchmark folder for ``speechrnn classify``: ~15,000 one-second 16 kHz WAV clips.

The clips are the real Speech Commands recordings of ``/work/shared/data/speech_commands_mini``
(FLAC), converted to 16-bit PCM WAV, laid out as ``<word>/<file>.wav``, outside the repository
(default ``~/.cache/speechrnn/bench/clips``). The folder holds about 12,100 clips; the rest up to
``--count`` are copies of them at half the level (``<stem>_quiet<n>.wav``), so every file is a
distinct real recording or a level-changed one. Clips shorter than 1 s stay short (as in the data
set). The folder is built once; a ``.complete`` marker records the count.

Usage::

    python benchmarks/make_folder.py [--source DIR] [--dest DIR] [--count 15000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_SOURCE = Path("/work/shared/data/speech_commands_mini")
DEFAULT_DEST = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speechrnn" / "bench" / "clips"


def source_clips(source: Path) -> list[Path]:
    """Every word clip of a Speech Commands tree (FLAC or WAV), sorted; background noise excluded."""
    clips = [
        p
        for p in source.glob("*/*")
        if p.suffix.lower() in (".flac", ".wav") and not p.parent.name.startswith("_")
    ]
    return sorted(clips)


def build_folder(*, source: Path = DEFAULT_SOURCE, dest: Path = DEFAULT_DEST, count: int = 15000) -> Path:
    """Create (once) the benchmark folder of ``count`` one-second WAV clips and return its path.

    Parameters
    ----------
    source : Path
        A Speech Commands tree.
    dest : Path
        Folder to create; reused when its ``.complete`` marker says it holds ``count`` clips.
    count : int
        Number of WAV files.

    Returns
    -------
    Path
    """
    import numpy as np
    import soundfile as sf

    marker = dest / ".complete"
    if marker.exists() and marker.read_text().strip() == str(count):
        return dest
    clips = source_clips(source)
    if not clips:
        raise SystemExit(f"no clips found under {source}")
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    copy = 0
    while written < count:
        for clip in clips:
            if written >= count:
                break
            audio, rate = sf.read(clip, dtype="float32")
            if copy:
                audio = (audio * 0.5**copy).astype(np.float32)
                name = f"{clip.stem}_quiet{copy}.wav"
            else:
                name = f"{clip.stem}.wav"
            folder = dest / clip.parent.name
            folder.mkdir(exist_ok=True)
            sf.write(folder / name, audio, rate, subtype="PCM_16")
            written += 1
        copy += 1
    marker.write_text(f"{count}\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--count", type=int, default=15000)
    args = parser.parse_args(argv)
    path = build_folder(source=args.source, dest=args.dest, count=args.count)
    n = sum(1 for _ in path.rglob("*.wav"))
    print(f"{path}: {n} WAV files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
