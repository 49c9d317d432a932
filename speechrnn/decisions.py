"""From a stream of class probabilities to command detections.

Scores come from the model; decisions come from here, and nowhere else: live listening,
long-file scanning and the app all feed :class:`CommandDecider` with ``(time, probabilities)``
pairs in time order. The semantics follow TensorFlow's ``RecognizeCommands``:

- probabilities are averaged over the last ``average_window_seconds``;
- nothing is decided until at least ``minimum_count`` results cover a quarter of that window;
- the averaged top class is a detection when its score exceeds ``threshold``, it is not an
  ignored class (``_silence_``, ``_unknown_``), and at least ``suppression_seconds`` passed since
  the previous detection;
- the same command is not reported twice in a row unless the stream was "re-armed" in between
  (the averaged top class fell below the threshold or changed), so one spoken word gives one
  detection while "yes ... yes" gives two.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecisionConfig:
    """How probabilities become detections.

    Parameters
    ----------
    average_window_seconds : float
        Probabilities of the results in this trailing window are averaged.
    threshold : float
        Minimum averaged probability of a detection, in [0, 1]. The default (0.7, with the
        default window) is the setting that keeps the shipped model under one false detection
        per 10 minutes on the validation stream of :mod:`speechrnn.streaming_accuracy`.
    suppression_seconds : float
        Minimum time between two detections.
    minimum_count : int
        Minimum number of results in the window before anything is decided.
    ignore : tuple of str
        Classes that are never reported (they still re-arm the decider).
    """

    average_window_seconds: float = 0.4
    threshold: float = 0.7
    suppression_seconds: float = 0.8
    minimum_count: int = 3
    ignore: tuple[str, ...] = ("_silence_", "_unknown_")

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {self.threshold}")
        if self.average_window_seconds < 0 or self.suppression_seconds < 0 or self.minimum_count < 1:
            raise ValueError("window and suppression must be >= 0 and minimum_count >= 1")

    def results_in_window(self, hop_seconds: float) -> int:
        """How many results, one every ``hop_seconds``, the averaging window holds at most."""
        return int(self.average_window_seconds / hop_seconds + 1e-6) + 1

    def check_hop(self, hop_seconds: float) -> None:
        """Raise ValueError when results every ``hop_seconds`` could never make a detection.

        The averaging window must hold at least ``minimum_count`` of them (a 0.3 s hop leaves at
        most 2 in the default 0.4 s window, fewer than the 3 it needs).
        """
        if not (hop_seconds > 0 and math.isfinite(hop_seconds)):
            raise ValueError(f"the hop must be a positive number of seconds, not {hop_seconds!r}")
        most = self.results_in_window(hop_seconds)
        if most < self.minimum_count:
            longest = self.average_window_seconds / max(self.minimum_count - 1, 1)
            raise ValueError(
                f"a hop of {hop_seconds:g} s leaves at most {most} result(s) in the {self.average_window_seconds:g} s "
                f"averaging window, fewer than the {self.minimum_count} a detection needs: use a hop of at most "
                f"{longest:g} s"
            )


@dataclass(frozen=True)
class Detection:
    """One recognized command.

    Parameters
    ----------
    label : str
    score : float
        Averaged probability at the moment of the decision.
    time : float
        Stream time of the decision, seconds: the end of the audio that completed it.
    start, end : float
        Span, in seconds, of the model window in the averaging window that scored this label
        highest: where the word most likely is (``start`` is never before 0, the start of the
        stream, even when that window reached back past it).
    """

    label: str
    score: float
    time: float
    start: float
    end: float

    def as_dict(self) -> dict[str, object]:
        """JSON-compatible form."""
        return {
            "label": self.label,
            "score": round(self.score, 6),
            "time": round(self.time, 3),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }


class CommandDecider:
    """Stateful, synchronous decision logic over ``(time, probabilities)`` results.

    Parameters
    ----------
    labels : sequence of str
        Class names aligned with the probability vectors.
    config : DecisionConfig
    window_seconds : float
        Length of the audio each result was computed over (the model's clip), used for the
        ``start``/``end`` of detections.
    """

    def __init__(self, labels: tuple[str, ...] | list[str], *, config: DecisionConfig | None = None,
                 window_seconds: float = 1.0) -> None:
        self.labels = tuple(labels)
        self.config = config or DecisionConfig()
        self.window_seconds = window_seconds
        self._ignored = np.array([label in self.config.ignore for label in self.labels])
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._last_label: str | None = None
        self._last_time = -np.inf
        self._armed = True
        self._average = np.zeros(len(self.labels), dtype=np.float32)

    def reset(self) -> None:
        """Forget every result and detection."""
        self._history.clear()
        self._last_label = None
        self._last_time = -np.inf
        self._armed = True
        self._average = np.zeros(len(self.labels), dtype=np.float32)

    @property
    def average(self) -> np.ndarray:
        """The latest averaged probabilities, shape ``(n_classes,)`` (zeros before any result)."""
        return self._average.copy()

    def update(self, time: float, probabilities: np.ndarray) -> Detection | None:
        """Add the result computed over the audio ending at ``time`` seconds.

        Parameters
        ----------
        time : float
            Stream time in seconds; must not decrease.
        probabilities : np.ndarray, shape (n_classes,)

        Returns
        -------
        Detection or None
        """
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.shape != (len(self.labels),):
            raise ValueError(f"expected {len(self.labels)} probabilities, got shape {probabilities.shape}")
        if self._history and time < self._history[-1][0]:
            raise ValueError(f"results must come in time order ({time} after {self._history[-1][0]})")
        cfg = self.config
        self._history.append((time, probabilities))
        while self._history[0][0] < time - cfg.average_window_seconds - 1e-9:
            self._history.popleft()
        span = time - self._history[0][0]
        if len(self._history) < cfg.minimum_count or span < cfg.average_window_seconds / 4 - 1e-9:
            return None
        self._average = np.mean([p for _, p in self._history], axis=0)
        top = int(self._average.argmax())
        label, score = self.labels[top], float(self._average[top])
        if score <= cfg.threshold or label != self._last_label:
            self._armed = True
        if score <= cfg.threshold or self._ignored[top]:
            return None
        if not self._armed or time - self._last_time < cfg.suppression_seconds - 1e-9:
            return None
        best_time = max(self._history, key=lambda item: item[1][top])[0]
        self._last_label, self._last_time, self._armed = label, time, False
        return Detection(
            label=label, score=score, time=time, start=max(0.0, best_time - self.window_seconds),
            end=best_time
        )


def decide(
    times: np.ndarray, probabilities: np.ndarray, labels: tuple[str, ...] | list[str], *,
    config: DecisionConfig | None = None, window_seconds: float = 1.0,
) -> list[Detection]:
    """Run a fresh :class:`CommandDecider` over a whole sequence of results.

    Parameters
    ----------
    times : np.ndarray, shape (n,)
        Increasing stream times in seconds.
    probabilities : np.ndarray, shape (n, n_classes)

    Returns
    -------
    list of Detection
    """
    decider = CommandDecider(labels, config=config, window_seconds=window_seconds)
    found = (decider.update(float(t), p) for t, p in zip(times, probabilities, strict=True))
    return [d for d in found if d is not None]
