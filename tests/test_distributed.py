"""Distributed data-parallel training: sharding, synchronised BatchNorm, and ``torchrun -m somna train``.

The end-to-end tests train the same tiny experiment once in one process and with
``torchrun --standalone --nproc_per_node=2 -m somna train`` (gloo, CPU), and require the same weights within
float tolerance: with the loss normalised by the global batch's valid-target weight and BatchNorm
synchronised over ranks, the two are the same computation, summed in another order. Dropout is 0 in the
tiny model because ranks draw their own dropout masks (statistically, not bitwise, the same training).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from somna.data.sequences import ChunkSampler, NightArrays
from somna.training import distributed

if TYPE_CHECKING:
    from somna.data.cohort import Cohort

# The BatchNorm workers re-import this module in fresh processes: heavier imports live in the tests below.

VENV_BIN = Path(sys.executable).parent
# Single-process and 2-rank gradients are the same sums taken in another order: per step they agree to
# ~1e-6 relative. Max-pooling makes the gradient discontinuous, though: where two values of a pooling
# window tie to within a rounding error, a 1-ulp difference in the forward pass sends that element's
# gradient to the neighbouring position (a few such flips in ~10⁵ windows of a batch), and AdamW's
# normalisation turns the small gradient difference into weight differences of up to ~1e-4 over 20 steps;
# the first block's batch-norm running variance, which accumulates them, has differed by 2e-5 to 1.7e-3
# depending on the synthetic cohort (real-hypnogram or Markov stage sequences). Hence: the CNN's weights
# and statistics (behind the max-pools) within TOLERANCE, every other weight within BULK (the CNN's flips
# reach the layers after it as noise of ~1e-5). Unsynchronised ranks would step each weight by up to lr
# (3e-3) per step in directions of their own, far beyond both bounds after 20 steps.
TOLERANCE = 5e-3
BULK = 5e-5
EMBED_DIM = 16


# --- sharding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_chunks", [0, 1, 2, 3, 7, 8])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_concatenate_to_the_global_batch(n_chunks: int, world: int) -> None:
    picked = [(0, 25 * k) for k in range(n_chunks)]
    shares = [ChunkSampler.shard(picked, r, world) for r in range(world)]
    assert [c for share in shares for c in share] == picked
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_rank_batches_follow_the_single_process_plan() -> None:
    rng = np.random.default_rng(0)
    nights = [
        NightArrays(f"r{i}", f"s{i}", {"eeg": rng.standard_normal((n, 1, 4)).astype(np.float32)}, labels)
        for i, (n, labels) in enumerate([(30, rng.integers(-1, 3, 30)), (41, rng.integers(-1, 3, 41))])
    ]
    sampler = ChunkSampler(nights, seq_len=4, chunk_len=10, batch_size=5, seed=5)
    assert len(sampler.chunks) % 5 == 1  # the last batch has one chunk: rank 1's share is empty
    whole = list(sampler.batches(1))
    shares = [list(sampler.batches(1, rank, 2)) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == len(whole) == len(sampler)
    for (signals, targets), a, b in zip(whole, *shares, strict=True):
        torch.testing.assert_close(torch.cat([a[1], b[1]]), targets, rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([a[0]["eeg"], b[0]["eeg"]]), signals["eeg"], rtol=0, atol=0)
    assert shares[1][-1][1].shape[0] == 0


# --- synchronised BatchNorm against BatchNorm on the global batch ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CASES = ([3, 2], [1, 0])  # chunks per rank: uneven shares; a short last batch with an empty share


def _batchnorm_case(sizes: list[int]) -> tuple[nn.BatchNorm1d, torch.Tensor, torch.Tensor]:
    torch.manual_seed(sum(sizes))
    x = torch.randn(sum(sizes), 3, 5) * 2 + 1
    upstream = torch.randn_like(x)
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
    return bn, x, upstream


def _sync_bn_worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    distributed._BN_GROUP = dist.new_group(backend="gloo")
    try:
        for case, sizes in enumerate(CASES):
            bn, x, upstream = _batchnorm_case(sizes)
            sync = distributed.convert_sync_batchnorm(nn.Sequential(bn)).train()
            first, size = sum(sizes[:rank]), sizes[rank]
            mine = (x[first : first + size] if size else x[:1]).clone().requires_grad_()
            with distributed.empty_shard(sync) if not size else torch.enable_grad():
                y = sync(mine)
                # the objective Σ y·upstream over the global batch, split over the ranks
                (y * (upstream[first : first + size] if size else torch.zeros_like(mine))).sum().backward()
            result = {"y": y.detach(), "dx": mine.grad, "dw": sync[0].weight.grad, "db": sync[0].bias.grad}
            torch.save({**result, "state": sync[0].state_dict()}, Path(out) / f"case{case}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sync_batchnorm_equals_batchnorm_on_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_sync_bn_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    close = {"rtol": 1e-5, "atol": 1e-6}
    for case, sizes in enumerate(CASES):
        bn, x, upstream = _batchnorm_case(sizes)
        x.requires_grad_()
        y = bn(x)
        (y * upstream).sum().backward()
        ranks = [torch.load(tmp_path / f"case{case}_rank{r}.pt", weights_only=True) for r in range(2)]
        real = [r for r, size in zip(ranks, sizes, strict=True) if size]
        torch.testing.assert_close(torch.cat([r["y"] for r in real]), y.detach(), **close)
        torch.testing.assert_close(torch.cat([r["dx"] for r in real]), x.grad, **close)
        for name, ref in (("dw", bn.weight.grad), ("db", bn.bias.grad)):
            torch.testing.assert_close(sum(r[name] for r in ranks), ref, **close)  # DDP's mean × N
        for r in ranks:  # running statistics: those of the global batch, bitwise the same on every rank
            for key, value in bn.state_dict().items():
                torch.testing.assert_close(r["state"][key], value, **close)
                assert torch.equal(r["state"][key], ranks[0]["state"][key])
        if 0 in sizes:  # the placeholder passes no gradient back
            assert not ranks[sizes.index(0)]["dx"].any()


# --- torchrun -m somna train, against one process --------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(small_cohort: Cohort) -> Cohort:
    return small_cohort


@pytest.fixture(scope="module")
def config(cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from somna.data.sequences import load_night
    from somna.data.splits import holdout_split
    from somna.stages import AASM
    from somna.training.trainer import records_of

    # batch_size 3 with 2 ranks: shares of 2 and 1 chunks, and a last batch of 1 (rank 1's share empty)
    fold = holdout_split(cohort.subjects, 0.25, 0.34, 0)
    nights = [load_night(cohort, r, AASM, ("eeg",)) for r in records_of(cohort, fold.train)]
    # the chunk count depends on the synthetic cohort (real-hypnogram or Markov stage sequences): pick a
    # chunk length that leaves a last batch of one chunk
    chunk_len = next(
        (
            c
            for c in (32, 24, 40, 28, 36, 20, 44)
            if len(ChunkSampler(nights, 8, c, batch_size=3).chunks) % 3 == 1
        ),
        None,
    )
    assert chunk_len is not None, "no chunk length gives a last batch of one chunk on this cohort"
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(
        f"""name = "tiny-ddp"
[data]
cache = "{cohort.root}"
[model]
embed_dim = {EMBED_DIM}
cnn_width = 8
seq_len = 8
dropout = 0.0
[training]
max_epochs = 2
patience = 10
batch_size = 3
chunk_len = {chunk_len}
lr = 3e-3
class_weights = "sqrt"
seed = 0
threads = 1
[cv]
test_fraction = 0.25
validation_fraction = 0.34
seed = 0
"""
    )
    return path


@pytest.fixture(scope="module")
def single(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from somna.config import load_experiment
    from somna.training.experiment import run_experiment

    run_dir = tmp_path_factory.mktemp("single") / "run"
    run_experiment(load_experiment(config), run_dir, mode="holdout", progress=False)
    return run_dir


def _torchrun(config: Path, run_dir: Path, logs: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        str(VENV_BIN / "torchrun"),
        "--standalone",
        "--nproc_per_node=2",
        f"--log-dir={logs}",
        "--redirects=3",
        "-m",
        "somna",
        "train",
        "--config",
        str(config),
        "--out",
        str(run_dir),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{_logs(logs)}"
    return done


def _logs(logs: Path) -> dict[str, str]:
    return {str(p.relative_to(logs)): p.read_text() for p in sorted(logs.rglob("*.log"))}


def _rank_log(logs: Path, rank: int, stream: str) -> str:
    (path,) = logs.rglob(f"attempt_0/{rank}/{stream}.log")
    return path.read_text()


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _assert_equivalent(single: Path, ddp: Path) -> None:
    from somna.models.checkpoint import load_checkpoint

    ref, got = load_checkpoint(single / "fold_00" / "last.pt"), load_checkpoint(ddp / "fold_00" / "last.pt")
    assert ref["model_state"].keys() == got["model_state"].keys()
    diffs = {
        k: (ref["model_state"][k].double() - got["model_state"][k].double()).abs() for k in ref["model_state"]
    }
    # The key half of the attention's key/value bias has an exactly zero gradient (adding a constant to
    # every key shifts all scores of a query equally; softmax ignores it): its gradient is rounding noise
    # (~1e-11) that AdamW normalises into lr-sized steps, differently in each run. No output depends on it.
    diffs["attention.key_value.bias"] = diffs["attention.key_value.bias"][EMBED_DIM:]
    largest = {k: float(d.max()) for k, d in diffs.items()}
    cnn = max((k for k in largest if k.startswith("cnn.")), key=largest.__getitem__)
    rest = max((k for k in largest if not k.startswith("cnn.")), key=largest.__getitem__)
    summary = f"max |Δ| {largest[cnn]:.1e} in the CNN ({cnn}), {largest[rest]:.1e} elsewhere ({rest})"
    print(summary)
    assert largest[cnn] < TOLERANCE and largest[rest] < BULK, summary
    assert [h["pass"] for h in got["history"]] == [1, 2]
    for a, b in zip(ref["history"], got["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)  # the pass loss follows the weights (above)
        assert (b["val_accuracy"], b["val_macro_f1"]) == (a["val_accuracy"], a["val_macro_f1"])
    assert got["best_pass"] == ref["best_pass"]
    with (
        np.load(single / "fold_00" / "predictions.npz") as a,
        np.load(ddp / "fold_00" / "predictions.npz") as b,
    ):
        assert np.array_equal(a["record"], b["record"]) and np.array_equal(a["y_true"], b["y_true"])
        assert float(np.abs(a["probs"] - b["probs"]).max()) < 1e-3
        assert np.mean(a["y_pred"] == b["y_pred"]) > 0.995  # an argmax may flip on a near-tie
    evaluation = [json.loads((d / "evaluation.json").read_text())["pooled"] for d in (single, ddp)]
    assert evaluation[1]["accuracy"] == pytest.approx(evaluation[0]["accuracy"], abs=0.005)


@pytest.mark.slow
def test_torchrun_training_matches_one_process(config: Path, single: Path, tmp_path: Path) -> None:
    run_dir, logs = tmp_path / "ddp", tmp_path / "logs"
    _torchrun(config, run_dir, logs)
    _assert_equivalent(single, run_dir)
    from somna.models.checkpoint import load_checkpoint

    # rank 0 alone wrote the run folder: the same files as one process, none half-written
    assert _files(run_dir) == _files(single)
    assert not list(run_dir.rglob("*.tmp"))
    assert len(load_checkpoint(run_dir / "fold_00" / "last.pt")["rank_rng"]) == 2
    stdout = _rank_log(logs, 0, "stdout")
    assert "fold 1/1" in stdout and "pass  2/2" in stdout and "report:" in stdout
    assert _rank_log(logs, 1, "stdout") == ""  # rank 1 trains quietly
    assert "pass" not in _rank_log(logs, 1, "stderr")  # no progress bar either


@pytest.mark.slow
def test_torchrun_resumes_a_run_interrupted_in_one_process(
    config: Path, single: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from somna.config import load_experiment
    from somna.models.checkpoint import load_checkpoint
    from somna.training import trainer
    from somna.training.experiment import run_experiment

    run_dir = tmp_path / "resumed"
    real_scores, calls = trainer.validation_scores, []

    def killed_in_pass_2(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after pass 2's training, before its checkpoint
        return real_scores(*args, **kwargs)

    monkeypatch.setattr(trainer, "validation_scores", killed_in_pass_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(load_experiment(config), run_dir, mode="holdout", progress=False)
    assert load_checkpoint(run_dir / "fold_00" / "last.pt")["next_pass"] == 1
    # both ranks load last.pt (written by one process, so without per-rank RNG states) and finish pass 2
    _torchrun(config, run_dir, tmp_path / "logs")
    assert "resuming" in _rank_log(tmp_path / "logs", 0, "stdout")
    _assert_equivalent(single, run_dir)


def test_no_torchrun_means_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.session() as ctx:
        assert not ctx.active and ctx.main and ctx.world_size == 1
    assert distributed.from_main(lambda: 3) == 3 and distributed.all_gather_objects("x") == ["x"]
    assert distributed.sum_across(2.5) == 2.5
    assert not dist.is_initialized()
