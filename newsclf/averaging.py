"""Weight averaging over the late evaluations of one run (stochastic weight averaging, SWA).

Picking the single checkpoint with the best validation macro-F1 lets a few validation articles decide which
of several nearly equal checkpoints ships; with ~500 validation articles that choice is noisy from seed to
seed. Averaging the weights seen at every evaluation in the last part of training costs no extra training
and is not steered by that noise. BERT has no batch-norm statistics, so the averaged weights need no
recalibration pass.

Each snapshot is written to ``<run>/averaging/step-N.safetensors`` (atomically), so an interrupted run that
is resumed averages exactly the snapshots of its final history, and the snapshots stay on disk for analysis.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def snapshot_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step}.safetensors"


def averaging_callback(folder: Path, start_fraction: float, rank: int) -> Any:
    """A ``TrainerCallback`` that saves the weights at every evaluation from ``start_fraction`` of the steps."""
    from transformers import TrainerCallback

    class SnapshotAtEvaluation(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> Any:
            if rank != 0 or model is None or state.global_step < start_fraction * state.max_steps:
                return control
            from safetensors.torch import save_file

            folder.mkdir(parents=True, exist_ok=True)
            target = snapshot_path(folder, state.global_step)
            tmp = target.with_suffix(".tmp")
            weights = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(weights, str(tmp))
            os.replace(tmp, target)  # a kill during the write leaves the previous snapshot or none, never half
            return control

    return SnapshotAtEvaluation()


def evaluated_steps(log_history: list[dict[str, Any]]) -> list[int]:
    """The steps at which this run's (final) history evaluated, in order, without repeats."""
    return sorted({int(e["step"]) for e in log_history if "eval_macro_f1" in e})


def average_into(model: Any, folder: Path, steps: list[int]) -> list[int]:
    """Load the mean of the snapshots at ``steps`` into ``model``; returns the steps averaged (may be empty)."""
    import torch
    from safetensors.torch import load_file

    used = [s for s in steps if snapshot_path(folder, s).exists()]
    if not used:
        return []
    total: dict[str, torch.Tensor] | None = None
    for step in used:
        weights = load_file(str(snapshot_path(folder, step)))
        if total is None:
            total = {k: v.double() for k, v in weights.items()}
        else:
            for k, v in weights.items():
                total[k] += v.double()
    assert total is not None
    state = model.state_dict()
    averaged = {k: (v / len(used)).to(state[k].dtype) for k, v in total.items()}
    model.load_state_dict(averaged)
    return used
