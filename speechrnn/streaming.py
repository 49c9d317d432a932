"""Real-time recognition: a synchronous, stateful recognizer fed with audio chunks of any size.

:class:`StreamingRecognizer` keeps a bounded ring of recent audio, computes each log-mel frame
once, as soon as the frame's last sample has arrived (with the classifier's
``log_mel.frames_numpy``: :class:`speechrnn.features.LogMel`, or its numpy twin
:class:`~speechrnn.features.LogMelNumpy` in the torch-free
:class:`~speechrnn.onnx_classifier.OnnxClassifier`), keeps the last clip's worth of frames in a
preallocated ring, and every hop (``hop_seconds``, a whole number of feature frames) evaluates
the model on the last clip's frames. Probabilities become detections in
:class:`speechrnn.decisions.CommandDecider`, the one shared decision logic.

Frame ``i`` of the stream covers samples ``[i * hop_length, i * hop_length + n_fft)``, exactly the
frames :func:`speechrnn.features.log_mel` computes offline over the same samples. Model step ``k``
(``k = 1, 2, ...``) happens when frame ``k * hop_frames - 1`` completes, so the result depends only
on the samples, never on how they were split into chunks. Before a full clip of audio has arrived
the clip window is left-padded with the features of digital silence (zeros), so the first
detection can come after a fraction of a second.

There are no threads here: the caller (``speechrnn listen``, the app's audio thread) reads blocks
from an :class:`~speechrnn.microphone.AudioSource` and pushes them. On the CPU, give the classifier one
thread (``classifier.use_threads(1)``, as ``speechrnn listen`` does): one small model call per hop
gains nothing from more, and on a busy machine extra threads make a hop tens of times slower.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from speechrnn.decisions import CommandDecider, DecisionConfig, Detection

if TYPE_CHECKING:
    from speechrnn.inference import Classifier
    from speechrnn.onnx_classifier import OnnxClassifier

__all__ = ["StreamStep", "StreamingRecognizer"]

_LEVEL_FLOOR_DB = -120.0


@dataclass(frozen=True)
class StreamStep:
    """One model evaluation (one hop) of a :class:`StreamingRecognizer`.

    Parameters
    ----------
    time : float
        Stream time in seconds at the end of the evaluated window (the end of its last frame).
    probabilities : np.ndarray, shape (n_classes,), float32
        The model's probabilities for the last clip of frames; read-only.
    average : np.ndarray, shape (n_classes,), float32
        The smoothed probabilities the decider used (zeros until it has enough results).
    detection : Detection or None
        The command this step completed, if any.
    frames : np.ndarray, shape (n_new, n_mels), float32
        Log-mel frames computed since the previous step; read-only.
    level_db : float
        RMS level of the audio since the previous step, in dBFS (-120 for digital silence).
    compute_seconds : float
        Wall time spent on features and the model for this step, in seconds.
    """

    time: float
    probabilities: np.ndarray
    average: np.ndarray
    detection: Detection | None
    frames: np.ndarray
    level_db: float
    compute_seconds: float


class StreamingRecognizer:
    """Recognize commands in a stream of audio pushed in chunks of any size.

    Parameters
    ----------
    classifier : Classifier or OnnxClassifier
        The loaded model (any device); its feature config defines the sample rate and clip.
    hop_seconds : float
        Time between model evaluations, in seconds; rounded to a whole number (>= 1) of
        feature hops (10 ms by default), e.g. 0.05 to 0.1.
    decision : DecisionConfig, optional
        Averaging window, threshold, suppression and minimum count (defaults when omitted).

    Attributes
    ----------
    labels : tuple of str
    sample_rate : int
        Rate, in Hz, of the samples :meth:`push` expects.
    hop_frames : int
        Feature frames between model evaluations.
    """

    def __init__(
        self,
        classifier: Classifier | OnnxClassifier,
        *,
        hop_seconds: float = 0.1,
        decision: DecisionConfig | None = None,
    ) -> None:
        self.classifier = classifier
        cfg = classifier.feature_config
        self.feature_config = cfg
        self.labels: tuple[str, ...] = tuple(classifier.labels)
        self.sample_rate: int = cfg.sample_rate
        if not (hop_seconds > 0 and math.isfinite(hop_seconds)):
            raise ValueError(f"hop_seconds must be a positive number, got {hop_seconds!r}")
        if hop_seconds > cfg.clip_seconds:
            raise ValueError(f"hop_seconds must be at most the clip length ({cfg.clip_seconds:g} s), "
                             f"got {hop_seconds:g}")
        self.hop_frames: int = max(1, round(hop_seconds / cfg.hop_seconds))
        (decision or DecisionConfig()).check_hop(self.hop_frames * cfg.hop_seconds)
        self._hop_length = cfg.hop_length
        self._n_fft = cfg.n_fft
        self._n_frames = cfg.n_frames
        self._n_mels = cfg.n_mels
        self._decider = CommandDecider(self.labels, config=decision, window_seconds=cfg.clip_seconds)
        # Samples a step needs: the new frames' span.
        self._step_span = (self.hop_frames - 1) * self._hop_length + self._n_fft
        # Audio ring (linear buffer, compacted when full): keeps at least the last clip of audio.
        self._keep = max(cfg.clip_samples, self._step_span)
        self._audio = np.zeros(2 * self._keep + self.hop_frames * self._hop_length, dtype=np.float32)
        # Frames ring: every frame is written twice, at p and p + n_frames, so the last n_frames
        # frames are always the contiguous slice [head, head + n_frames).
        self._ring = np.empty((2 * self._n_frames, self._n_mels), dtype=np.float32)
        self._window_shape = (1, self._n_frames, self._n_mels)
        silence = classifier.log_mel.frames_numpy(np.zeros((1, self._n_fft), dtype=np.float32))
        self._silence_frame = np.asarray(silence[0], dtype=np.float32)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Start over: forget all audio, frames, scores and detections; time returns to 0."""
        self._n_samples = 0  # samples consumed since the start
        self._audio_base = 0  # absolute index of self._audio[0]
        self._audio_end = 0  # valid samples in self._audio
        self._frames_done = 0  # frames computed so far
        self._last_step_sample = 0  # absolute sample index at the previous step
        self._ring[:] = self._silence_frame
        self._head = 0
        self._decider.reset()

    @property
    def time(self) -> float:
        """Seconds of audio consumed so far."""
        return self._n_samples / self.sample_rate

    @property
    def hop_seconds(self) -> float:
        """The actual time between model evaluations, in seconds."""
        return self.hop_frames * self._hop_length / self.sample_rate

    @property
    def decision(self) -> DecisionConfig:
        """The decision settings in use."""
        return self._decider.config

    @decision.setter
    def decision(self, config: DecisionConfig) -> None:
        self.set_decision(config)

    def set_decision(self, config: DecisionConfig) -> None:
        """Use new decision settings from the next step on (the averaging history restarts).

        Raises
        ------
        ValueError
            The averaging window cannot hold ``minimum_count`` results at this hop.
        """
        config.check_hop(self.hop_seconds)
        self._decider = CommandDecider(self.labels, config=config, window_seconds=self.feature_config.clip_seconds)

    def recent_audio(self) -> np.ndarray:
        """A copy of the last clip of audio (fewer samples at the start of a stream), float32."""
        n = min(self._audio_end, self.feature_config.clip_samples)
        return self._audio[self._audio_end - n : self._audio_end].copy()

    # ------------------------------------------------------------------ processing

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Consume audio and return the detections it completes.

        Parameters
        ----------
        samples : np.ndarray, shape (n,) or (n, 1)
            Mono float audio at :attr:`sample_rate`, any length (also 0).

        Returns
        -------
        list of Detection
            In time order; usually empty.
        """
        return [step.detection for step in self.push_steps(samples) if step.detection is not None]

    def push_steps(self, samples: np.ndarray) -> list[StreamStep]:
        """Consume audio like :meth:`push` and return every model step it completed.

        Parameters
        ----------
        samples : np.ndarray, shape (n,) or (n, 1)
            Mono float audio at :attr:`sample_rate`.

        Returns
        -------
        list of StreamStep
            One per hop completed by these samples, in time order.
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"expected mono samples of shape (n,), got shape {x.shape}")
        steps: list[StreamStep] = []
        pos, total = 0, x.shape[0]
        while pos < total:
            next_step = (self._frames_done + self.hop_frames - 1) * self._hop_length + self._n_fft
            room = self._audio.shape[0] - self._audio_end
            if room == 0:
                self._compact()
                continue
            take = min(next_step - self._n_samples, total - pos, room)
            self._audio[self._audio_end : self._audio_end + take] = x[pos : pos + take]
            self._audio_end += take
            self._n_samples += take
            pos += take
            if self._n_samples == next_step:
                steps.append(self._step())
        return steps

    def _compact(self) -> None:
        """Move the last ``_keep`` samples to the front of the audio buffer."""
        drop = self._audio_end - self._keep
        self._audio[: self._keep] = self._audio[drop : self._audio_end]
        self._audio_base += drop
        self._audio_end = self._keep

    def _step(self) -> StreamStep:
        started = _time.perf_counter()
        hl, hop = self._hop_length, self.hop_frames
        start = self._frames_done * hl - self._audio_base
        block = np.lib.stride_tricks.as_strided(
            self._audio[start:], shape=(hop, self._n_fft), strides=(hl * 4, 4), writeable=False
        )
        frames = self.classifier.log_mel.frames_numpy(block)
        n, head = self._n_frames, self._head
        tail = frames[-n:]  # a hop longer than a clip only keeps its last clip of frames
        k = tail.shape[0]
        first = min(k, n - head)
        self._ring[head : head + first] = tail[:first]
        self._ring[head + n : head + n + first] = tail[:first]
        if k > first:
            self._ring[: k - first] = tail[first:]
            self._ring[n : n + k - first] = tail[first:]
        head = (head + k) % n
        self._head = head
        self._frames_done += hop
        window = self._ring[head : head + n].reshape(self._window_shape)
        probabilities = self.classifier.probabilities_from_frames(window)[0]
        compute = _time.perf_counter() - started
        end_time = ((self._frames_done - 1) * hl + self._n_fft) / self.sample_rate
        detection = self._decider.update(end_time, probabilities)
        # level of the audio since the previous step (it is all still in the buffer)
        since = self._audio[max(0, self._last_step_sample - self._audio_base) : self._audio_end]
        self._last_step_sample = self._n_samples
        mean_square = float(np.dot(since, since)) / max(1, since.shape[0])
        level_db = 10.0 * math.log10(mean_square) if mean_square > 1e-12 else _LEVEL_FLOOR_DB
        probabilities.flags.writeable = False
        frames.flags.writeable = False
        average = self._decider.average
        average.flags.writeable = False
        return StreamStep(
            time=end_time,
            probabilities=probabilities,
            average=average,
            detection=detection,
            frames=frames,
            level_db=max(level_db, _LEVEL_FLOOR_DB),
            compute_seconds=compute,
        )
