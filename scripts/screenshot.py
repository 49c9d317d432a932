"""Take a screenshot of the real app window while it recognizes a spoken command.

The window is opened offscreen (``QT_QPA_PLATFORM=offscreen`` unless set), real command clips are
played through :class:`speechrnn.microphone.FileSource` (the same interface as the microphone, paced
in real time), and once the commands show up in the detection log the window is grabbed and saved.

Usage::

    python scripts/screenshot.py [--model PATH] [--clip FILE ...] [--output docs/screenshot.png]

Exits with status 1 (and saves nothing) when no command is detected within ``--timeout``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "speech_commands"
DEFAULT_CLIPS = (FIXTURES / "stop" / "adec6a94_nohash_0.flac", FIXTURES / "yes" / "58df33b5_nohash_1.flac",
                 FIXTURES / "left" / "78622c2b_nohash_1.flac")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the shipped default model)")
    parser.add_argument("--clip", type=Path, nargs="+", default=list(DEFAULT_CLIPS),
                        help="command clips to play one after the other (default: three clips from "
                             f"{FIXTURES.relative_to(REPO)})")
    parser.add_argument("--files", type=Path, nargs="*", default=None,
                        help="files or folders to classify first, so the Files tab has results "
                             "(default: the first clip's folder's parent)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--gap-seconds", type=float, default=1.0, help="silence before each clip")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the detection")
    parser.add_argument("--threshold", type=float, help="detection threshold set in the window (default: the app's)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Open the window, play the clip, wait for the detection, save the screenshot; returns the exit status."""
    args = parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6.QtCore import QSettings

    from gui.app import create_application, process_events_until
    from gui.main_window import MainWindow
    from speechrnn import default_model_path
    from speechrnn.audio import load_audio
    from speechrnn.microphone import FileSource, InputDevice

    model = args.model or default_model_path()
    if not model.is_file():
        print(f"error: {model}: model file not found (train it or pass --model)", file=sys.stderr)
        return 1
    app = create_application([])
    name = "command clips" if len(args.clip) > 1 else f"{args.clip[0].parent.name}/{args.clip[0].name}"

    def source_factory(device: object, sample_rate: int) -> FileSource:
        gap = np.zeros(round(args.gap_seconds * sample_rate), dtype=np.float32)
        parts = [part for clip in args.clip for part in (gap, load_audio(clip, sample_rate=sample_rate))]
        source = FileSource(np.concatenate(parts), sample_rate=sample_rate, realtime=True,
                            tail_silence_seconds=2.0)
        source.name = name
        return source

    def device_lister(refresh: bool) -> list[InputDevice]:
        return [InputDevice(index=0, name=name, channels=1, default_samplerate=16000.0, is_default=True)]

    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue("record_folder", str(Path.home() / "speechrnn-recordings"))
        window = MainWindow(settings=settings, source_factory=source_factory, device_lister=device_lister,
                            model_path=model, compute_device="cpu")
        window.resize(args.width, args.height)
        window.show()
        if not process_events_until(app, lambda: window.classifier is not None, 30.0):
            print(f"error: the model did not load: {window.last_error}", file=sys.stderr)
            return 1
        files = args.files if args.files is not None else [args.clip[0].parent.parent]
        if files:
            window.classify_paths(files)
            process_events_until(app, lambda: not window.is_classifying(), 60.0)
            window.tabs.setCurrentIndex(0)
        if args.threshold is not None:
            window.threshold_slider.setValue(round(args.threshold * 100))
        best: dict[str, float] = {}

        def detected_or_ended() -> bool:
            for label, p in window.prob_bars.values().items():
                best[label] = max(best.get(label, 0.0), p)
            return len(window.log_entries) >= len(args.clip) or not window.is_listening

        window.start_listening()
        process_events_until(app, detected_or_ended, args.timeout)
        if not window.log_entries:
            top = ", ".join(f"{k} {v:.0%}" for k, v in sorted(best.items(), key=lambda kv: -kv[1])[:3])
            print(f"error: no command detected (highest smoothed probabilities: {top})", file=sys.stderr)
            window.close()
            return 1
        process_events_until(app, lambda: False, 0.35)  # let the spectrogram scroll the word into view
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.output)):
            print(f"error: cannot write {args.output}", file=sys.stderr)
            return 1
        found = ", ".join(f"{e.label} ({e.score:.0%})" for e in window.log_entries)
        print(f"played {', '.join(c.parent.name for c in args.clip)}; detected {found}; saved {args.output}")
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
