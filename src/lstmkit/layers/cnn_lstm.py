r"""CNN-LSTM: a CNN reads each frame, an LSTM reads the sequence of CNN features (seed 000).

The CNN is applied "TimeDistributed": the (N, L) frames are folded into one batch of N*L frames,
encoded in one call, and unfolded into a (N, L, F) feature sequence. Unlike
:class:`lstmkit.ConvLSTM`, the convolution sits outside the recurrence.

==========  ==========================================================
N, L        batch size, sequence length (always batch-first here)
frame       the shape of one step, e.g. (C, H, W) images
F           features per frame after the encoder (flattened)
==========  ==========================================================
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import Tensor, nn

from ..errors import describe
from .lstm import LSTM
from ..validation import check_lengths
from .rnn import last_step

Lengths = Union[Tensor, Sequence[int], None]


class CNNLSTM(nn.Module):
    r"""``head(LSTM(encoder(frame_t) for each t))``.

    Args:
        frame_encoder: any module mapping a batch of frames (B, *frame) to features (B, ...);
            its output is flattened to (B, F).
        lstm: a batch-first sequence layer called as ``lstm(features, hx)`` (and with ``lengths=``
            when lengths are given) returning ``(output (N, L, F_out), state)``, e.g.
            ``lstmkit.LSTM(F, hidden, batch_first=True)`` or ``torch.nn.LSTM``. If None,
            ``lstmkit.LSTM(feature_size, hidden_size, batch_first=True)`` is built.
        head: optional module applied to the LSTM output (e.g. ``nn.Linear(hidden, classes)``).
        return_sequences: keep every step's output (N, L, F_out); else only the output at each
            sequence's last real step (N, F_out).
        feature_size, hidden_size: sizes of the default LSTM (only when ``lstm`` is None).

    Inputs ``x, hx=None, *, lengths=None``: x (N, L, *frame); hx the LSTM's initial state; lengths
    (N,). Output: ``head(y)`` with y (N, L, F_out) or (N, F_out), or y itself without a head.
    """

    def __init__(self, frame_encoder: nn.Module, lstm: Optional[nn.Module] = None,
                 head: Optional[nn.Module] = None, *, return_sequences: bool = False,
                 feature_size: Optional[int] = None, hidden_size: Optional[int] = None):
        super().__init__()
        if lstm is None:
            if feature_size is None or hidden_size is None:
                raise ValueError(f"CNNLSTM: without an lstm module, expected feature_size and "
                                 f"hidden_size for the default lstmkit.LSTM, got {feature_size!r} "
                                 f"and {hidden_size!r}")
            lstm = LSTM(feature_size, hidden_size, batch_first=True)
        elif not getattr(lstm, "batch_first", True):
            raise ValueError(f"CNNLSTM: expected a batch_first=True lstm (features arrive as "
                             f"(N, L, F)), got {type(lstm).__name__} with batch_first=False")
        self.frame_encoder, self.lstm, self.head = frame_encoder, lstm, head
        self.return_sequences = bool(return_sequences)

    def encode(self, x: Tensor) -> Tensor:
        """(N, L, *frame) -> (N, L, F): one encoder call over all N*L frames."""
        N, L = x.shape[0], x.shape[1]
        feats = self.frame_encoder(x.reshape(N * L, *x.shape[2:]))  # (N*L, ...)
        return feats.reshape(N, L, -1)

    def forward(self, x: Tensor, hx=None, *, lengths: Lengths = None) -> Tensor:
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.dim() < 3:
            raise ValueError(f"{name}: expected input (N, L, *frame) of rank >= 3, got "
                             f"{describe(x)}")
        if lengths is not None:
            lengths = check_lengths(name, lengths, x.shape[1], x.shape[0])
        feats = self.encode(x)  # (N, L, F)
        if lengths is None:
            y, _ = self.lstm(feats, hx)
        else:
            y, _ = self.lstm(feats, hx, lengths=lengths)  # (N, L, F_out)
        if not self.return_sequences:
            y = last_step(y.transpose(0, 1), lengths, reverse=False)  # (N, F_out)
        return self.head(y) if self.head is not None else y


class CNNLSTM1d(CNNLSTM):
    r"""The univariate/multivariate time-series CNN-LSTM: the series is cut into subsequences, a
    Conv1d reads each one, an LSTM reads the subsequence features, a linear head forecasts.

    ``x`` (N, T, in_features) with T a multiple of ``subseq_len`` -> S = T / subseq_len frames of
    (in_features, subseq_len) -> Conv1d(in_features, channels, kernel_size) -> ReLU ->
    MaxPool1d(pool) -> flatten -> lstmkit.LSTM(F, hidden_size) -> Linear(hidden_size, out_features)
    on the last step. Output (N, out_features).
    """

    def __init__(self, in_features: int, subseq_len: int, hidden_size: int,
                 out_features: int = 1, *, channels: int = 64, kernel_size: int = 1, pool: int = 2):
        if subseq_len < kernel_size or (subseq_len - kernel_size + 1) // pool < 1:
            raise ValueError(f"CNNLSTM1d: expected subseq_len >= kernel_size and room for one "
                             f"pooled position, got subseq_len={subseq_len}, "
                             f"kernel_size={kernel_size}, pool={pool}")
        feature_size = channels * ((subseq_len - kernel_size + 1) // pool)
        encoder = nn.Sequential(nn.Conv1d(in_features, channels, kernel_size), nn.ReLU(),
                                nn.MaxPool1d(pool), nn.Flatten())
        super().__init__(encoder, None, nn.Linear(hidden_size, out_features),
                         feature_size=feature_size, hidden_size=hidden_size)
        self.in_features, self.subseq_len = in_features, subseq_len

    def forward(self, x: Tensor, hx=None, *, lengths: Lengths = None) -> Tensor:
        """x (N, T, in_features); lengths count subsequences, not time steps."""
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != self.in_features \
                or x.shape[1] % self.subseq_len:
            raise ValueError(f"{name}: expected input (N, T, {self.in_features}) with T a multiple "
                             f"of subseq_len={self.subseq_len}, got {describe(x)}")
        N, T = x.shape[0], x.shape[1]
        frames = x.reshape(N, T // self.subseq_len, self.subseq_len, self.in_features)
        return super().forward(frames.transpose(2, 3), hx, lengths=lengths)  # (N, S, F_in, sub)


__all__ = ["CNNLSTM", "CNNLSTM1d"]
