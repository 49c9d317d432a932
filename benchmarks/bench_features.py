"""Log-mel feature extraction: the librosa reference, per clip, vs speechrnn's batched torch path.

Times, on real one-second Speech Commands clips already decoded in memory:

- the plain approach: :func:`speechrnn.features.log_mel_librosa` (``librosa.feature.melspectrogram``
  and a log) clip by clip, as a first script would do it;
- :class:`speechrnn.features.LogMel` (``torch.stft`` + mel matrix) on one clip at a time, and on
  batches of 8 to 512 clips, with 1 and 2 torch threads;
- the streaming path, :meth:`LogMel.frames_numpy` on the 10 new frames of one 100 ms hop.

The feature settings (mel bands, window, hop) are those of the model file (``--model``, default
the shipped model), so the figure is what that model computes.

Each approach is checked against librosa (largest absolute difference of the log-mel values) and
the approaches alternate round by round so that they share the machine's load.

Usage::

    python benchmarks/bench_features.py [--model FILE] [--clips 512] [--rounds 3]

Prints a table and writes ``benchmarks/results/features.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import benchmark_model, environment, real_clips, table, time_interleaved, write_results

CHUNKS = (8, 32, 128, 512)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512, help="clips per batched round (default 512)")
    parser.add_argument("--librosa-clips", type=int, default=32, help="clips per librosa round (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--model", help="take the feature settings from this model file (default: the shipped model)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/features.json)")
    args = parser.parse_args(argv)

    import torch

    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.features import LogMel, log_mel_librosa

    model_path, _ = benchmark_model(args.model)
    cfg = load_checkpoint(model_path).feature_config
    clips = real_clips(args.clips, sample_rate=cfg.sample_rate)
    log_mel = LogMel(cfg)
    audio = torch.from_numpy(clips)
    reference = np.stack([log_mel_librosa(c, cfg) for c in clips[: args.librosa_clips]])

    def batched(chunk: int) -> torch.Tensor:
        return torch.cat([log_mel(audio[i : i + chunk]) for i in range(0, audio.shape[0], chunk)])

    def one_by_one() -> None:
        for i in range(args.librosa_clips):
            log_mel(audio[i : i + 1])

    def librosa_loop() -> None:
        for c in clips[: args.librosa_clips]:
            log_mel_librosa(c, cfg)

    hop_frames = np.lib.stride_tricks.sliding_window_view(clips[0], cfg.n_fft)[:: cfg.hop_length][:10]
    hop_frames = np.ascontiguousarray(hop_frames)

    def hops() -> None:
        for _ in range(100):
            log_mel.frames_numpy(hop_frames)

    results: dict[str, dict] = {}
    previous = torch.get_num_threads()
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            approaches = {
                "plain: librosa, clip by clip": (librosa_loop, args.librosa_clips),
                "speechrnn LogMel, clip by clip": (one_by_one, args.librosa_clips),
                **{f"speechrnn LogMel, batches of {c}": (lambda c=c: batched(c), args.clips) for c in CHUNKS},
                "speechrnn streaming, one 100 ms hop (10 frames)": (hops, 100),
            }
            if threads != args.threads[0]:  # librosa and the hop path use one thread either way
                approaches = {k: v for k, v in approaches.items() if "batches" in k}
            timed = time_interleaved({k: fn for k, (fn, _) in approaches.items()}, number=1, rounds=args.rounds,
                                     warmup=1)
            for name, r in timed.items():
                per = approaches[name][1]
                results[f"{name} [{threads} thread{'s' if threads > 1 else ''}]"] = {
                    "threads": threads,
                    "clips_per_call": per,
                    "seconds_per_clip_best": r["best"] / per,
                    "seconds_per_clip_median": r["median"] / per,
                }
        torch.set_num_threads(previous)
        agreement = {
            "LogMel batched vs librosa": float(np.abs(batched(32)[: args.librosa_clips].numpy() - reference).max()),
            "frames_numpy vs librosa": float(np.abs(log_mel.frames_numpy(hop_frames) - reference[0, :10]).max()),
        }

    plain = results["plain: librosa, clip by clip [1 thread]"]["seconds_per_clip_best"]
    rows = []
    for name, r in results.items():
        best, median = r["seconds_per_clip_best"], r["seconds_per_clip_median"]
        unit = "hop" if "hop" in name else "clip"
        rows.append([name, f"{best * 1e3:.3f} /{unit}", f"{median * 1e3:.3f}",
                     f"{1 / best:,.0f}" if unit == "clip" else "", f"{plain / best:.0f}x" if unit == "clip" else ""])
    print(f"log-mel features of {args.clips} real 1 s clips "
          f"({model_path.name}: {cfg.n_mels} mels, {cfg.n_frames} frames per clip)")
    print(table(rows, ["", "best ms", "median ms", "clips/s", "vs librosa"]))
    print("largest |difference| from librosa:", ", ".join(f"{k} {v:.1g}" for k, v in agreement.items()))
    out = write_results("features", {"results": results, "agreement": agreement, "clips": args.clips,
                                     "model": str(model_path), "feature_config": cfg.to_dict(),
                                     "environment": environment()}, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
