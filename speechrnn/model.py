"""The many-to-one recurrent classifier over log-mel frames.

One module, :class:`SpeechRNN`, configured by one frozen :class:`ModelConfig`:

    frames (B, T, n_mels)
      -> per-band normalisation (mean/std buffers fitted on training data)
      -> optional 1-D convolution over time (a small front-end; may stride to shorten T)
      -> RNN | GRU | LSTM, 1..n layers, optionally bidirectional
      -> pooling of the sequence into one vector: last state | mean | attention
      -> two dense layers -> class logits (B, n_classes)

Attention pooling follows de Andrade et al. (2018), "A neural attention model for speech command
recognition": a query is projected from the output at the last valid step, dotted with every
output step, softmaxed over valid steps, and the weighted sum is classified.

Variable-length batches are packed, and pooling is masked, so a padded sequence gives exactly
the result of running it alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechrnn.model_config import CELLS, POOLINGS, Cell, ModelConfig, Pooling

__all__ = ["CELLS", "POOLINGS", "Cell", "ModelConfig", "Pooling", "SpeechRNN", "count_parameters"]


class SpeechRNN(nn.Module):
    """Many-to-one recurrent classifier; see the module docstring for the layout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        if config.conv_channels:
            self.frontend: nn.Module | None = nn.Sequential(
                nn.Conv1d(
                    config.n_mels,
                    config.conv_channels,
                    config.conv_kernel,
                    stride=config.conv_stride,
                    padding=config.conv_kernel // 2,
                ),
                nn.BatchNorm1d(config.conv_channels),
                nn.ReLU(),
            )
        else:
            self.frontend = None
        rnn_class = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[config.cell]
        self.rnn = rnn_class(
            input_size=config.rnn_input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        if config.pooling == "attention":
            self.query = nn.Linear(config.output_size, config.output_size)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(config.output_size, config.head_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_size, config.n_classes),
        )

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-band feature statistics, shape ``(n_mels,)`` each, fitted on training data."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-3))

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits for a batch of frame sequences.

        Parameters
        ----------
        frames : torch.Tensor, shape (batch, time, n_mels)
            Log-mel frames; positions past each sequence's length are ignored.
        lengths : torch.Tensor of int, shape (batch,), optional
            Valid frames per sequence; all ``time`` when omitted.

        Returns
        -------
        torch.Tensor, shape (batch, n_classes)
            Unnormalised logits: ``self.head(self.embed(frames, lengths))``.
        """
        return self.head(self.embed(frames, lengths))

    def embed(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled sequence vector the classifier head reads (an "embedding" of each clip).

        Parameters
        ----------
        frames : torch.Tensor, shape (batch, time, n_mels)
            Log-mel frames; positions past each sequence's length are ignored.
        lengths : torch.Tensor of int, shape (batch,), optional
            Valid frames per sequence; all ``time`` when omitted.

        Returns
        -------
        torch.Tensor, shape (batch, output_size)
            Everything before :attr:`head`: normalisation, front-end, RNN and pooling.
        """
        batch, time, _ = frames.shape
        x = (frames - self.feature_mean) / self.feature_std
        if lengths is None:
            full = True
            lengths = torch.full((batch,), time, dtype=torch.long)
        else:
            lengths = lengths.to("cpu", torch.long)
            full = bool((lengths == time).all())
            if not full:
                valid = torch.arange(time, device=x.device)[None, :] < lengths.to(x.device)[:, None]
                x = x * valid.unsqueeze(-1)
        if self.frontend is not None:
            x = self.frontend(x.transpose(1, 2)).transpose(1, 2)
            lengths = self.config.sequence_lengths(lengths).clamp(1, x.shape[1])
        steps = x.shape[1]
        if full:
            outputs, state = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)
        return self._pool(outputs, state, lengths.to(x.device), full)

    def _pool(
        self,
        outputs: torch.Tensor,
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        lengths: torch.Tensor,
        full: bool,
    ) -> torch.Tensor:
        cfg = self.config
        batch, steps, _ = outputs.shape
        if cfg.pooling == "last":
            hidden = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H)
            return hidden[-cfg.directions :].transpose(0, 1).reshape(batch, cfg.output_size)
        mask = None if full else torch.arange(steps, device=outputs.device)[None, :] < lengths[:, None]
        if cfg.pooling == "mean":
            if mask is None:
                return outputs.mean(dim=1)
            return (outputs * mask.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(-1).to(outputs.dtype)
        # attention: query from the last valid output step
        last = outputs[torch.arange(batch, device=outputs.device), lengths - 1]
        query = self.query(last)  # (B, D)
        scores = torch.bmm(outputs, query.unsqueeze(-1)).squeeze(-1)  # (B, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
