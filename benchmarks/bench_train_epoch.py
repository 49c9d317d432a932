"""Training epoch time of the default recipe on speech_commands_mini: data loading share vs model share.

Uses the training package's own pieces (:class:`training.data.SpeechCommandsData`, its training
split's ``batches``, :class:`training.train.Prefetcher`, :class:`speechrnn.model.SpeechRNN`,
AdamW, the recipe's loss) with ``training/configs/default.toml``, and measures:

1. **one epoch as** ``speechrnn-train`` **runs it**: batches prepared (augmentation + log-mel +
   SpecAugment) in the prefetch thread while the model trains; wall time, and the time the
   training loop waited for data (what ``log.csv`` reports as ``data_share``);
2. the CPU time of each thread during that epoch: the prefetch thread's is the data loading, the
   training loop's is the model (forward, backward, optimiser); the data share of the compute is
   ``data / (data + model)``, reported next to the wait share. Goal: data loading under 20% of
   the epoch. With one torch thread (the default here) each thread's CPU clock measures its own
   work exactly, whatever else runs on the machine;
3. **the plain approach** a user would write: a PyTorch loop over files, ``librosa.load`` and
   a librosa log-mel per file, batches assembled in the loop (no augmentation, no prefetch), the
   same model; a few batches are timed and extrapolated to the epoch's size.

Decoded audio and espeak-ng renderings are cached under ``~/.cache/speechrnn`` by the first run;
the data set's set-up time is reported separately.

Usage::

    python benchmarks/bench_train_epoch.py [--data DIR] [--max-batches N] [--plain-batches 4]

Prints a table and writes ``benchmarks/results/train_epoch.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_RECIPE, MINI_DATA, clip_files, environment, table, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(MINI_DATA), help=f"Speech Commands folder (default {MINI_DATA})")
    parser.add_argument("--config", default=str(DEFAULT_RECIPE), help="training config (default: the default recipe)")
    parser.add_argument("--max-batches", type=int, default=0, help="stop each measurement after N batches (0: epoch)")
    parser.add_argument("--plain-batches", type=int, default=4, help="batches of the plain loop timed (default 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: as fast as 2 on a busy 2-core machine, and each thread's "
                             "CPU time then measures its work exactly; 0: the recipe's setting)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as in speechrnn-train (repeatable)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/train_epoch.json)")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from speechrnn.features import log_mel_librosa
    from speechrnn.model import SpeechRNN, count_parameters
    from training.config import load_config
    from training.data import SpeechCommandsData, feature_statistics
    from training.train import Prefetcher, amp_dtype, autocast

    try:
        config = load_config(args.config, [f"data.data_dir={json.dumps(args.data)}", *args.set]).resolved()
    except ValueError as exc:  # a bad config file or --set: one line, like speechrnn-train
        print(f"bench_train_epoch: error: {exc}", file=sys.stderr)
        return 2
    threads = args.threads or config.threads
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    opt = config.optim
    t0 = time.perf_counter()
    data = SpeechCommandsData(config.data, config.features, seed=config.seed, progress=True)
    train_set = data.split("training", augment=config.augment)
    setup_seconds = time.perf_counter() - t0
    batch_size = opt.batch_size
    n_batches = train_set.n_batches(batch_size)
    limit = min(n_batches, args.max_batches) if args.max_batches else n_batches

    model = SpeechRNN(config.model)
    mean, std = feature_statistics(train_set)
    model.set_normalization(mean, std)
    train_set.set_fill(mean)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)

    cpu = torch.device("cpu")
    mixed = amp_dtype(config, cpu)  # optim.amp = "bf16": as speechrnn-train on the CPU

    def train_step(frames: torch.Tensor, labels: torch.Tensor) -> None:
        with autocast(mixed, cpu):
            logits = model(frames)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=opt.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
        optimizer.step()

    print(f"{len(train_set)} training examples, {n_batches} batches of {batch_size}; timing {limit} batches; "
          f"torch threads {torch.get_num_threads()}, prefetch depth {config.prefetch}, "
          f"precision {'bfloat16 mixed' if mixed else 'float32'}", file=sys.stderr)

    # 1. the epoch as speechrnn-train runs it, with each thread's CPU time: the prefetch thread's is
    # the data loading, the training loop's is the model (exact with one torch thread per Python
    # thread; with more, work done by torch's worker threads is not attributed)
    data_cpu = 0.0

    def timed(iterator):
        nonlocal data_cpu
        while True:
            tick = time.thread_time()
            batch = next(iterator, None)
            data_cpu += time.thread_time() - tick
            if batch is None:
                return
            yield batch

    model.train()
    batches = Prefetcher(timed(train_set.batches(0, batch_size=batch_size)), depth=config.prefetch)
    waited = model_cpu = 0.0
    cpu0, start = time.process_time(), time.perf_counter()
    done = 0
    while done < limit:
        tick = time.perf_counter()
        batch = next(batches, None)
        waited += time.perf_counter() - tick
        if batch is None:
            break
        tick = time.thread_time()
        train_step(*batch)
        model_cpu += time.thread_time() - tick
        done += 1
    batches.close()
    epoch_wall, epoch_cpu = time.perf_counter() - start, time.process_time() - cpu0

    # 4. the plain loop: files -> librosa -> batch -> model
    files = clip_files(args.plain_batches * batch_size, seed=1)
    label_of = {w: i % config.model.n_classes for i, w in enumerate(sorted({p.parent.name for p in files}))}
    plain_data = plain_model = 0.0
    import librosa

    for b in range(args.plain_batches):
        tick = time.perf_counter()
        feats, labels = [], []
        for path in files[b * batch_size : (b + 1) * batch_size]:
            audio, _ = librosa.load(path, sr=config.features.sample_rate)
            audio = np.pad(audio[: config.features.clip_samples],
                           (0, max(0, config.features.clip_samples - audio.shape[0])))
            feats.append(log_mel_librosa(audio, config.features))
            labels.append(label_of[path.parent.name])
        frames, targets = torch.from_numpy(np.stack(feats)), torch.tensor(labels)
        tock = time.perf_counter()
        train_step(frames, targets)
        plain_data += tock - tick
        plain_model += time.perf_counter() - tock
    plain_epoch = (plain_data + plain_model) / args.plain_batches * limit
    plain_data_share = plain_data / (plain_data + plain_model)

    examples = min(len(train_set), limit * batch_size)
    result = {
        "config": str(args.config),
        "overrides": list(args.set),
        "data": args.data,
        "model_config": config.model.to_dict(),
        "parameters": count_parameters(model),
        "torch_threads": torch.get_num_threads(),
        "precision": "bfloat16 mixed" if mixed else "float32",
        "training_examples": len(train_set),
        "batches_per_epoch": n_batches,
        "batches_timed": limit,
        "batch_size": batch_size,
        "dataset_setup_seconds": setup_seconds,
        "epoch": {
            "wall_seconds": epoch_wall,
            "cpu_seconds": epoch_cpu,
            "data_wait_seconds": waited,
            "data_wait_share": waited / epoch_wall,
            "examples_per_second": examples / epoch_wall,
            "full_epoch_wall_seconds_estimate": epoch_wall * n_batches / limit,
        },
        "data_cpu_seconds": data_cpu,
        "model_cpu_seconds": model_cpu,
        "data_share_of_compute": data_cpu / (data_cpu + model_cpu),
        "plain_loop": {
            "batches_timed": args.plain_batches,
            "data_seconds_per_batch": plain_data / args.plain_batches,
            "model_seconds_per_batch": plain_model / args.plain_batches,
            "epoch_seconds_estimate": plain_epoch,
            "data_share": plain_data_share,
        },
        "speedup_vs_plain": plain_epoch / epoch_wall,
        "goal": {"data_share_max": 0.20},
        "environment": environment(),
    }
    mc = config.model
    print(f"default recipe ({mc.description}, {count_parameters(model):,} parameters), {len(train_set)} training "
          f"examples, batch "
          f"{batch_size}, {torch.get_num_threads()} torch threads; {limit} of {n_batches} batches timed")
    rows = [
        ["speechrnn-train epoch (prefetch)", f"{epoch_wall:.1f}", f"{examples / epoch_wall:,.0f}",
         f"{100 * waited / epoch_wall:.1f}% waited", ""],
        ["  data loading (prefetch thread CPU)", f"{data_cpu:.1f}", f"{examples / data_cpu:,.0f}",
         f"{100 * result['data_share_of_compute']:.1f}% of compute", ""],
        ["  model (training loop CPU)", f"{model_cpu:.1f}", f"{examples / model_cpu:,.0f}", "", ""],
        ["plain loop (librosa per file)", f"{plain_epoch:.1f}", f"{examples / plain_epoch:,.0f}",
         f"{100 * plain_data_share:.1f}% data", f"{plain_epoch / epoch_wall:.1f}x slower"],
    ]
    print(table(rows, ["", "seconds", "examples/s", "data", "vs speechrnn"]))
    print(f"data set set-up (cached decode + espeak clips): {setup_seconds:.1f} s; goal: data under 20% of the "
          f"epoch: {'met' if max(result['data_share_of_compute'], waited / epoch_wall) < 0.2 else 'NOT met'}")
    print(f"wrote {write_results('train_epoch', result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
