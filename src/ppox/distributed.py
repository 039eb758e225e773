"""Distributed overlay (SPEC §6). With one process every helper is a no-op.

The multi-process implementation on ``torch.distributed`` arrives with the DPPO issue; the
trainer already calls these at the places where ranks must agree, so that change stays local.
"""

from __future__ import annotations

import torch


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def is_main() -> bool:
    """Rank 0 logs, evaluates and writes checkpoints."""
    return rank() == 0
