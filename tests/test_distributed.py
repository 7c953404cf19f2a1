"""Distributed training on CPU (gloo) with the shipped ``tiny`` config, launched as the README says:

    torchrun --standalone --nproc_per_node 2 -m newsclf.cli train --config tiny
    accelerate launch --multi_gpu --num_processes 2 -m newsclf.cli train --config tiny

On a machine without GPUs the Trainer runs DistributedDataParallel over gloo. Both ranks train on their
shards, only rank 0 writes and reports, and the model folder it writes loads and predicts.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NPROC = 2


def _launcher(name: str) -> list[str]:
    """The venv's ``torchrun`` / ``accelerate`` script, or the module it runs when the script is not there."""
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", {"torchrun": "torch.distributed.run", "accelerate": "accelerate.commands.accelerate_cli"}[name]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", params=["torchrun", "accelerate"])
def ddp_run(request, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    tmp = tmp_path_factory.mktemp(request.param)
    out = tmp / "runs"
    env = {
        **os.environ,
        "NEWSCLF_CACHE": str(tmp / "cache"),
        "OMP_NUM_THREADS": "1",
        "HF_HOME": str(tmp / "hf"),  # no accelerate config of the user's (it lives under HF_HOME)
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    if request.param == "torchrun":
        launch = [*_launcher("torchrun"), "--standalone", f"--nproc_per_node={NPROC}"]
    else:  # a free port: accelerate's default (29500) may be taken by another run
        launch = [*_launcher("accelerate"), "launch", "--multi_gpu", f"--num_processes={NPROC}",
                  f"--main_process_port={_free_port()}"]
    cmd = [*launch, "-m", "newsclf.cli", "train", "--config", "tiny", "--output_dir", str(out)]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    return proc, out / "tiny"


def test_two_ranks_train_and_rank_zero_alone_saves(ddp_run):
    proc, run_dir = ddp_run
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    saved = [line for line in output.splitlines() if line.startswith("model saved to")]
    assert saved == [f"model saved to {run_dir / 'model'}"], output[-4000:]
    # Rank 1 is quiet: the data-building log lines appear once, from rank 0.
    assert output.count("labelled 830 of 830 articles") == 1, output[-4000:]
    assert not list(run_dir.glob(".model-tmp-*")) and not list(run_dir.glob(".dataset-tmp-*"))


def test_both_ranks_trained_on_their_shards(ddp_run):
    proc, run_dir = ddp_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    state = json.loads((run_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    n_train = json.loads((run_dir / "model" / "metrics.json").read_text())["train_articles"]
    batches = math.ceil(n_train / 8)  # tiny: batch_size 8, one input per article (input_mode head)
    # The Trainer counts epochs in batches of this rank's dataloader: with two ranks each has half the batches,
    # so the same 6 steps cover twice the epoch fraction of a single process.
    assert state["global_step"] == 6
    assert state["epoch"] == pytest.approx(6 / math.ceil(batches / NPROC))
    assert state["epoch"] != pytest.approx(6 / batches)
    # Each rank saved its own RNG state into the checkpoint: both took part in every step up to it.
    ckpt = run_dir / "checkpoints" / "checkpoint-6"
    assert sorted(p.name for p in ckpt.glob("rng_state_*.pth")) == [f"rng_state_{r}.pth" for r in range(NPROC)]
    # The logged loss is each rank's batch mean, not multiplied by the number of ranks: an untrained 5-class
    # model sits near ln 5 = 1.61 (the Trainer's default scaling showed 3.2 here).
    history = json.loads((run_dir / "model" / "log_history.json").read_text())
    assert history[-1]["train_loss"] < 2.2, history


def test_sharded_evaluation_matches_rank_zero_scoring(ddp_run):
    proc, run_dir = ddp_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # During training each rank scored half the validation batches and the Trainer gathered them; the
    # article-level macro-F1 of the best checkpoint must equal rank 0's own scoring of the saved model,
    # which holds only if the gathered logits came back in article order.
    state = json.loads((run_dir / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    validation = json.loads((run_dir / "model" / "metrics.json").read_text())["validation"]
    # The transformer's own score (the saved macro_f1 is the blend's when the TF-IDF baseline is blended in).
    alone = validation.get("model_alone_macro_f1", validation["macro_f1"])
    assert alone == pytest.approx(state["best_metric"], abs=1e-9)


def test_the_saved_model_loads_and_predicts(ddp_run):
    import newsclf

    proc, run_dir = ddp_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (run_dir / "dataset" / "dataset_dict.json").is_file()
    clf = newsclf.load(run_dir / "model")
    result = clf.predict("市应急管理局开展安全生产隐患排查\n检查组深入化工企业，排查危险化学品储存隐患，督促限期整改。")
    assert result["label"] in clf.labels
    assert 0.0 <= result["score"] <= 1.0


def _worker_of_rank(launcher_pid: int, rank: int) -> int:
    """The pid of the launcher's worker process that has ``RANK=<rank>`` in its environment (Linux /proc)."""
    for child in Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no worker with RANK={rank} under pid {launcher_pid}")


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/children").exists(),
                    reason="finds the workers through Linux's /proc/<pid>/task/<pid>/children")
@pytest.mark.parametrize("target", ["terminal", "rank 1"])
def test_ctrl_c_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path, target):
    """Ctrl-C in a terminal reaches torchrun and both workers (and torchrun passes it on again); a SIGINT may also
    reach one rank alone. Either way every rank must stop after the same step (else DDP's next all-reduce waits
    for the rank that left), all save one checkpoint together, and rank 0 says so once."""
    import signal
    import time

    out = tmp_path / "runs"
    log = tmp_path / "log.txt"
    env = {**os.environ, "NEWSCLF_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    cmd = [*_launcher("torchrun"), "--standalone", f"--nproc_per_node={NPROC}", "-m", "newsclf.cli", "train",
           "--config", "tiny", "--output_dir", str(out), "--max_steps", "100000", "--eval_steps", "50000"]
    with log.open("w") as fh:
        # Its own process group, so that the whole group can be signalled as a terminal does.
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while "it/s]" not in log.read_text(errors="replace"):  # rank 0's progress bar: training has begun
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
                time.sleep(0.5)
            time.sleep(1)
            if target == "terminal":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(_worker_of_rank(proc.pid, 1), signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode != 0  # torchrun ends with the signal it got, or with its worker's status 130
    # Rank 0 announces the Ctrl-C it saw, and reports the interruption whichever rank saw it.
    assert output.count("Ctrl-C: saving a checkpoint") == (1 if target == "terminal" else 0), output[-4000:]
    assert output.count("interrupted: training interrupted; a checkpoint is in") == 1, output[-4000:]
    assert "model saved to" not in output and not (out / "tiny" / "model").exists()
    checkpoints = list((out / "tiny" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1, output[-4000:]
    state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 100000
    assert sorted(p.name for p in checkpoints[0].glob("rng_state_*.pth")) == [f"rng_state_{r}.pth" for r in range(NPROC)]
