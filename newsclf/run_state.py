"""Run state of a training: which process this is, what the checkpoints were written with, what it prints.

Kept apart from the training loop (:mod:`newsclf.train`) so that :mod:`newsclf.finalise` and the CLI can ask
for the process rank without importing the loop.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from newsclf.config import Config

log = logging.getLogger("newsclf.train")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def process_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process in a distributed run (``torchrun``, ``accelerate launch``, MPI);
    ``(0, 1)`` when run alone. Read from ``torch.distributed`` once the Trainer has set up the process group, and
    before that from the launcher's environment (the variables accelerate reads too)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = _env_int(("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"), 1)
    if world <= 1:  # a stray RANK without a world is not a distributed run
        return 0, 1
    return _env_int(("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"), 0), world


CHECKPOINT_CONFIG = "newsclf-config.json"
# Settings that do not change what is trained: a resume may differ in them.
_RESUME_FREE_KEYS = {"num_threads"}


def check_resume_config(ckpt_dir: Path, config: Config, *, force: bool = False) -> None:
    """Refuse to resume checkpoints written under other settings (or say so and go on with ``force``)."""
    saved_path = ckpt_dir / CHECKPOINT_CONFIG
    if not saved_path.exists():
        log.warning("%s has no %s (written by an older newsclf); cannot check the settings match", ckpt_dir,
                    CHECKPOINT_CONFIG)
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    now = json.loads(json.dumps(config.to_dict()))  # the same JSON round trip the saved copy went through
    diffs = [
        f"{key}: checkpoint {saved.get(key)!r}, now {now.get(key)!r}"
        for key in sorted(set(saved) | set(now))
        if key not in _RESUME_FREE_KEYS and saved.get(key) != now.get(key)
    ]
    if not diffs:
        return
    message = (
        f"--resume: the checkpoints in {ckpt_dir} were written with other settings ({'; '.join(diffs)}). Resume "
        "with the same config and overrides, start afresh without --resume (or with another --name), or pass "
        "--force to continue with the new settings anyway"
    )
    if not force:
        raise ValueError(message)
    log.warning("resuming with changed settings (--force): %s", "; ".join(diffs))


def _concise_progress() -> Any:
    from transformers.trainer_callback import ProgressCallback

    class ConciseProgress(ProgressCallback):
        """The Trainer's progress bar, printing one readable line per evaluation instead of raw log dicts."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            line = None
            if "eval_macro_f1" in logs:
                f1 = logs["eval_macro_f1"]
                # From the run's history, not from what this process saw: after --resume the evaluations
                # before the checkpoint count too (the history is restored with it, this entry included).
                best = max([f1] + [e["eval_macro_f1"] for e in state.log_history if "eval_macro_f1" in e])
                line = (f"step {state.global_step}/{state.max_steps} (epoch {state.epoch:.2f}): validation "
                        f"macro-F1 {f1:.4f}, accuracy {logs.get('eval_accuracy', float('nan')):.4f}, loss "
                        f"{logs.get('eval_loss', float('nan')):.4f}; best so far {best:.4f}")
            elif "train_runtime" in logs:
                line = (f"training done: {state.global_step} steps in {logs['train_runtime']:.0f} s, mean loss "
                        f"{logs.get('train_loss', float('nan')):.4f}")
            if line:
                (self.training_bar.write if self.training_bar is not None else print)(line)

    return ConciseProgress
