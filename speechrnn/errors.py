"""The project's exception types: every failure a user can cause is one of these."""

from __future__ import annotations


class SpeechRNNError(Exception):
    """Base class of every error speechrnn raises on purpose."""


class AudioError(SpeechRNNError):
    """An audio file could not be read: the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(SpeechRNNError):
    """A model file is missing, unsafe, corrupt or of an unknown format."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DeviceError(SpeechRNNError):
    """A compute device (``cuda``) or an audio input device is not available."""
