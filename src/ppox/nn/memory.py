"""The memory stage: an LSTM or GRU core between the observation encoder and the MLP trunks.

A core reads encoded features and carries a state from step to step; the state is reset (to
zeros) at every episode start. Its state travels outside the module as one flat tensor per
sample, ``[B, state_size]`` (an LSTM's ``h`` and ``c`` side by side), so the rollout, the
checkpoint and :meth:`ppox.io.policy.Policy.predict` carry it like any other array.

Training runs the core over sequences ``[K, C, F]`` (K steps of C sequences) that may contain
episode starts. :meth:`MemoryCore.sequence` does this with one fused call of the recurrent
layer (cuDNN on a GPU, oneDNN on a CPU), never a Python loop over the steps: each sequence is cut
at its episode starts into segments, the segments are laid side by side (padded at their end,
where a recurrent layer's outputs cannot reach the earlier steps) and run at once, each from its
own initial state: the stored state for the first segment of a sequence, zeros for a segment
that begins an episode. That is exactly the step-by-step computation with resets
(tests/test_memory.py checks it against a loop, and a reset against numbers worked by hand).
"""

from __future__ import annotations

from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["Cut", "MemoryCore", "Recurrence", "cut_sequences"]


class Recurrence(NamedTuple):
    """What a recurrent forward pass needs besides the observations, which come sequence by
    sequence: ``C`` sequences of ``length`` steps each, flat in sequence-major order (sample
    ``c·length + k`` is step ``k`` of sequence ``c``).

    ``state`` ``[C, D]``: each sequence's initial state (all cores side by side), as carried
    from the step before it; ``starts`` ``[C·length]`` bool: the steps that begin an episode
    (the state is reset to zeros *before* such a step, including a sequence's first step).
    """

    state: Tensor
    starts: Tensor
    length: int


class MemoryCore(nn.Module):
    """An ``lstm`` or ``gru`` core of ``size`` units over ``in_features``-wide inputs."""

    def __init__(self, kind: str, in_features: int, size: int) -> None:
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ValueError(f"memory={kind!r}: 'lstm' or 'gru'")
        self.kind, self.size = kind, size
        self.rnn: nn.LSTM | nn.GRU = (nn.LSTM if kind == "lstm" else nn.GRU)(in_features, size)
        self.state_size = 2 * size if kind == "lstm" else size

    def _split(self, state: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``[B, D]`` → the layer's ``h0`` (and ``c0``), ``[1, B, size]`` each."""
        if self.kind == "lstm":
            h, c = self._split_cell(state)
            return h.unsqueeze(0), c.unsqueeze(0)
        return state.unsqueeze(0).contiguous()

    def _join(self, hx: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        if isinstance(hx, tuple):
            return torch.cat([hx[0][0], hx[1][0]], dim=-1)
        return hx[0]

    def sequence(
        self,
        x: Tensor,
        state: Tensor,
        starts: Tensor,
        *,
        need_final: bool = False,
        cut: Cut | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Run ``x`` ``[K, C, F]`` from ``state`` ``[C, D]``, resetting the state before every
        step where ``starts`` ``[K, C]`` is True. Returns the outputs ``[K, C, size]`` and, with
        ``need_final``, each sequence's state after its last step ``[C, D]`` (else None).
        ``cut``: :func:`cut_sequences` of ``x`` and ``starts``, when the caller has it already
        (several cores reading the same input share it)."""
        h0 = torch.where(starts[0].unsqueeze(1), 0.0, state)
        if starts.shape[0] == 1:  # one step (acting): the fused cell, without the layer's setup
            return self._cell(x[0], h0)
        cut = cut if cut is not None else cut_sequences(x, starts)
        if cut is None:  # no episode starts inside: one call over the sequences as they are
            out, hx = self.rnn(x, self._split(h0))
            return out, self._join(hx) if need_final else None
        return self._segmented(cut, h0, need_final)

    @torch.no_grad()
    def carried_states(self, x: Tensor, state: Tensor, starts: Tensor, length: int) -> Tensor:
        """The state carried into steps ``0, length, 2·length, …`` of ``x`` ``[T, N, F]`` run from
        ``state`` ``[N, D]`` with resets at ``starts`` ``[T, N]``: ``[T / length, N, D]`` (the
        fresh initial states of training sequences). A GRU's output is its state, so one fused
        call over the whole rollout gives them; an LSTM's cell state is not an output of the
        fused layer, so it is carried from sequence to sequence, one fused call each (packed, so
        that each segment's last state is its own)."""
        T = starts.shape[0]
        if self.kind == "gru":
            out, _ = self.sequence(x, state, starts)
            return torch.cat([state.unsqueeze(0), out[length - 1 : T - 1 : length]])
        kept = []  # an LSTM: one fused call per sequence, carrying (h, c) from one to the next
        for j in range(0, T, length):
            kept.append(state)
            part = starts[j : j + length]
            state = self.sequence(x[j : j + length], state, part, need_final=True)[1]  # type: ignore[assignment]
        return torch.stack(kept)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        w_ih, w_hh, b_ih, b_hh = (cast(Tensor, getattr(self.rnn, n)) for n in names)
        return w_ih, w_hh, b_ih, b_hh

    def _cell(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        w_ih, w_hh, b_ih, b_hh = self._weights()
        if self.kind == "lstm":
            h, c = torch.lstm_cell(x, self._split_cell(h0), w_ih, w_hh, b_ih, b_hh)
            return h.unsqueeze(0), torch.cat([h, c], dim=1)
        h = torch.gru_cell(x, h0, w_ih, w_hh, b_ih, b_hh)
        return h.unsqueeze(0), h

    def _split_cell(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """An LSTM's ``[B, 2·size]`` state → ``h``, ``c`` ``[B, size]`` each."""
        return state[:, : self.size].contiguous(), state[:, self.size :].contiguous()

    def _segmented(self, cut: Cut, h0: Tensor, need_final: bool) -> tuple[Tensor, Tensor | None]:
        """The sequences cut at their episode starts, run side by side in one call."""
        init = h0.new_zeros(cut.segments, h0.shape[1]).index_copy(0, cut.first, h0)
        if need_final:
            packed = pack_padded_sequence(cut.padded, cut.lengths, enforce_sorted=False)
            out_packed, hx = self.rnn(packed, self._split(init))
            out, _ = pad_packed_sequence(out_packed, total_length=cut.padded.shape[0])
            final = self._join(hx)[cut.last]
        else:  # padding sits after each segment's last step: it cannot change its outputs
            out, _ = self.rnn(cut.padded, self._split(init))
            final = None
        y = out[cut.pos, cut.seg]  # [C·K, size]
        K, C = cut.shape
        return y.reshape(C, K, -1).transpose(0, 1), final


class Cut(NamedTuple):
    """``C`` sequences of ``K`` steps cut at their episode starts into ``segments`` segments, laid
    side by side: step ``k`` of sequence ``c`` (flat position ``p = c·K + k``) is step
    ``pos[p]`` of segment ``seg[p]``."""

    shape: tuple[int, int]  # (K, C)
    pos: Tensor  # [C·K]
    seg: Tensor  # [C·K]
    lengths: Tensor  # [segments] on the host (what packing reads)
    first: Tensor  # [C] each sequence's first segment (the only ones that carry a state in)
    last: Tensor  # [C] each sequence's last segment
    padded: Tensor  # [max length, segments, F] the input, zeros after each segment's end
    segments: int


def cut_sequences(x: Tensor, starts: Tensor) -> Cut | None:
    """The :class:`Cut` of ``x`` ``[K, C, F]`` at ``starts`` ``[K, C]``, or None when no
    episode starts after a sequence's first step (then no cut is needed)."""
    K, C = starts.shape
    if K == 1 or not bool(starts[1:].any()):
        return None
    begin = starts.t().clone()  # [C, K]: a segment begins at each start and at step 0
    begin[:, 0] = True
    begin = begin.reshape(-1)
    seg = begin.cumsum(0) - 1
    first_pos = torch.nonzero(begin).squeeze(1)  # [S] where each segment begins
    pos = torch.arange(C * K, device=x.device) - first_pos[seg]
    segments = first_pos.shape[0]
    lengths = torch.bincount(seg, minlength=segments).cpu()
    flat = x.transpose(0, 1).reshape(C * K, x.shape[-1])
    padded = flat.new_zeros(int(lengths.max()), segments, flat.shape[-1]).index_put(
        (pos, seg), flat
    )
    heads = torch.arange(C, device=x.device) * K
    return Cut((K, C), pos, seg, lengths, seg[heads], seg[heads + K - 1], padded, segments)
