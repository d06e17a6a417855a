"""Where training work runs: one reading of ``device="auto"`` for the trainer, the teachers and ``adapt``."""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` where torch sees a GPU, else ``"cpu"``; any other name is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
