"""The dimensions of :class:`speechrnn.model.SpeechRNN`, importable without PyTorch.

:class:`ModelConfig` travels in every model file and in the metadata of its ONNX export, so the
torch-free classifier (:mod:`speechrnn.onnx_classifier`) can describe a model it runs;
:mod:`speechrnn.model` re-exports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = ["CELLS", "POOLINGS", "Cell", "ModelConfig", "Pooling"]

Cell = Literal["rnn", "gru", "lstm"]
Pooling = Literal["last", "mean", "attention"]

CELLS: tuple[str, ...] = ("rnn", "gru", "lstm")
POOLINGS: tuple[str, ...] = ("last", "mean", "attention")


@dataclass(frozen=True)
class ModelConfig:
    """Dimensions of :class:`~speechrnn.model.SpeechRNN`; saved in every checkpoint.

    Parameters
    ----------
    n_mels : int
        Input feature size (mel bands per frame).
    n_classes : int
        Output classes.
    cell : {"rnn", "gru", "lstm"}
    hidden_size : int
        Units per direction per layer.
    num_layers : int
    bidirectional : bool
    dropout : float
        Dropout between recurrent layers and before the classifier.
    pooling : {"last", "mean", "attention"}
    conv_channels : int
        Channels of the convolutional front-end; 0 disables it.
    conv_kernel : int
        Its kernel size in frames (odd).
    conv_stride : int
        Its stride in frames; 2 halves the sequence the RNN reads.
    head_size : int
        Units of the hidden dense layer of the classifier.
    """

    n_mels: int = 40
    n_classes: int = 10
    cell: str = "gru"
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.1
    pooling: str = "attention"
    conv_channels: int = 0
    conv_kernel: int = 5
    conv_stride: int = 1
    head_size: int = 64

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, not {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.conv_channels and self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, not {self.conv_kernel}")
        for name in ("n_mels", "n_classes", "hidden_size", "num_layers", "conv_stride", "conv_kernel", "head_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.conv_channels < 0:
            raise ValueError(f"conv_channels must be 0 (no front-end) or more, not {self.conv_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def directions(self) -> int:
        """1, or 2 when bidirectional."""
        return 2 if self.bidirectional else 1

    @property
    def description(self) -> str:
        """A short human-readable summary, e.g. ``"bidirectional lstm 2x96, conv 64/stride 2, attention"``."""
        cell = f"{'bidirectional ' if self.bidirectional else ''}{self.cell} {self.num_layers}x{self.hidden_size}"
        front = f"conv {self.conv_channels}/stride {self.conv_stride}" if self.conv_channels else "no conv front-end"
        return f"{cell}, {front}, {self.pooling}"

    @property
    def output_size(self) -> int:
        """Size of the pooled sequence vector."""
        return self.hidden_size * self.directions

    @property
    def rnn_input_size(self) -> int:
        """Feature size the recurrent layers read."""
        return self.conv_channels or self.n_mels

    def sequence_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Lengths after the front-end, for input ``lengths`` in frames (an int tensor or array)."""
        if not self.conv_channels:
            return lengths
        pad = self.conv_kernel // 2
        return (lengths + 2 * pad - self.conv_kernel) // self.conv_stride + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)
