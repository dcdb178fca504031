"""The sequence stager and its data path: shapes, causality, window equivalence, whole-night inference,
chunk sampling. Fast: no cohort, small random models on random signals."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from somna.data.sequences import ChunkSampler, NightArrays, read_padded
from somna.models import ModelConfig, StagingNetwork
from somna.models.predict import predict_night as _predict_night
from somna.models.torch_model import TorchStageModel
from somna.stages import UNSCORED

ALL_CHANS = (("eeg", 2), ("eog", 1), ("emg", 1))
TOL = 1e-5


def _config(modalities: tuple[str, ...] = ("eeg", "eog", "emg"), **kw: object) -> ModelConfig:
    sizes = {"embed_dim": 16, "cnn_width": 8, "dropout": 0.1} | kw
    chans = tuple((m, c) for m, c in ALL_CHANS if m in modalities)
    return ModelConfig(modalities=modalities, n_chans=chans, **sizes)  # type: ignore[arg-type]


def _model(config: ModelConfig, seed: int = 0) -> StagingNetwork:
    """A random model in eval mode, with non-trivial BatchNorm statistics (as after training)."""
    torch.manual_seed(seed)
    model = StagingNetwork(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _signals(config: ModelConfig, batch: int, n_epochs: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    chans = dict(config.n_chans)
    return {
        m: torch.randn(
            batch, n_epochs, chans[m], config.emg_n_times if m == "emg" else config.n_times, generator=gen
        )
        for m in config.modalities
    }


def _night(config: ModelConfig, n_epochs: int, seed: int = 1) -> NightArrays:
    signals = {m: x[0].numpy() for m, x in _signals(config, 1, n_epochs, seed).items()}
    return NightArrays("R1", "S1", signals, np.zeros(n_epochs, dtype=np.int64))


def predict_night(model: StagingNetwork, night: NightArrays, **kw: int) -> np.ndarray:
    return _predict_night(TorchStageModel(model), night.signals, **kw)


# --- shapes and the receptive field -------------------------------------------------------------------


@pytest.mark.parametrize("modalities", [("eeg",), ("eeg", "eog"), ("eeg", "eog", "emg")])
@pytest.mark.parametrize("n_classes", [5, 6, 3, 2])
def test_output_shape_per_modality_set_and_label_set(modalities: tuple[str, ...], n_classes: int) -> None:
    config = _config(modalities, n_classes=n_classes, seq_len=6)
    model = _model(config)
    signals = _signals(config, batch=2, n_epochs=9)
    logits = model(signals)
    assert logits.shape == (2, 9, n_classes)
    assert torch.isfinite(logits).all()
    # the model reads exactly its own modalities: a missing one is an error, not silently ignored
    if len(modalities) > 1:
        with pytest.raises(KeyError):
            model({m: x for m, x in signals.items() if m != modalities[-1]})


def test_eeg_is_required() -> None:
    from somna.errors import SomnaError

    with pytest.raises(SomnaError, match="must include 'eeg'"):
        ModelConfig(modalities=("eog", "emg"))


@pytest.mark.parametrize("tcn_kernel", [2, 3, 5])
def test_receptive_field_plus_attention_span_is_seq_len(tcn_kernel: int) -> None:
    for seq_len in range(max(tcn_kernel, 3), 65):
        config = ModelConfig(seq_len=seq_len, tcn_kernel=tcn_kernel)
        rf = 1 + (tcn_kernel - 1) * sum(config.tcn_dilations)
        assert config.attention_span >= 1, seq_len
        assert rf + config.attention_span - 1 == seq_len, seq_len
    model = StagingNetwork(ModelConfig(seq_len=20, tcn_kernel=tcn_kernel, embed_dim=8, cnn_width=4))
    assert model.tcn.receptive_field + model.attention.span - 1 == model.seq_len == 20


@pytest.mark.parametrize("seq_len", [1, 2])
def test_seq_len_shorter_than_the_tcn_kernel_is_refused(seq_len: int) -> None:
    from somna.errors import SomnaError

    with pytest.raises(SomnaError, match="seq_len"):
        _config(seq_len=seq_len)


# --- causality ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [6, 12])
@pytest.mark.parametrize("modality", ["eeg", "eog", "emg"])
def test_causal_and_exactly_seq_len_epochs_of_context(seq_len: int, modality: str) -> None:
    config = _config(seq_len=seq_len)
    model = _model(config)
    n = 2 * seq_len + 4
    signals = _signals(config, 1, n)
    with torch.no_grad():
        base = model(signals)[0]
        for k in (0, 3, seq_len + 1):
            changed = {m: x.clone() for m, x in signals.items()}
            changed[modality][0, k] = -2.0 * changed[modality][0, k] + 1.0
            diff = (model(changed)[0] - base).abs().amax(-1)
            assert k == 0 or diff[:k].max() < 1e-6, f"epoch {k} changed an earlier output: {diff}"
            assert diff[k] > 1e-4, f"changing {modality} at epoch {k} did not change output {k}"
            # output t depends on epochs t-seq_len+1 … t: epoch k reaches k+seq_len-1 but not k+seq_len
            assert diff[k + seq_len - 1] > 1e-6
            if k + seq_len < n:
                assert diff[k + seq_len :].max() < 1e-6, f"epoch {k} reached beyond its window: {diff}"


# --- window equivalence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        _config(seq_len=12),
        _config(("eeg", "eog"), seq_len=7, tcn_kernel=2),
        _config(seq_len=9, cnn_stride=10),
        ModelConfig(),  # the default model (seq_len 20, full size)
    ],
    ids=["seq12", "seq7-eeg-eog-k2", "seq9-stride10", "default-seq20"],
)
def test_chunk_equals_explicit_windows(config: ModelConfig) -> None:
    model = _model(config, seed=3)
    seq_len = model.seq_len
    assert seq_len == config.seq_len
    n = seq_len + 17
    signals = _signals(config, 2, n, seed=4)
    with torch.no_grad():
        chunk = model(signals)
        starts = range(n - seq_len + 1)
        windows = {m: torch.cat([x[:, s : s + seq_len] for s in starts]) for m, x in signals.items()}
        last = model(windows)[:, -1].view(len(starts), 2, -1).transpose(0, 1)  # (batch, window, classes)
    assert chunk.shape == (2, n, config.n_classes)
    assert (chunk[:, seq_len - 1 :] - last).abs().max() < TOL


# --- whole-night inference ----------------------------------------------------------------------------


def _explicit_probs(model: StagingNetwork, night: NightArrays) -> np.ndarray:
    """Window of seq_len epochs ending at each epoch, padded before the night, last output."""
    seq_len = model.seq_len
    out = []
    with torch.no_grad():
        for t in range(night.n_epochs):
            window = {
                m: torch.from_numpy(read_padded(night, t - seq_len + 1, t + 1, m))[None]
                for m in model.config.modalities
            }
            out.append(torch.softmax(model(window)[0, -1], -1).numpy())
    return np.stack(out)


@pytest.fixture(scope="module")
def night_and_expected() -> tuple[StagingNetwork, NightArrays, np.ndarray]:
    config = _config(seq_len=8)
    model = _model(config, seed=5)
    night = _night(config, n_epochs=45)
    return model, night, _explicit_probs(model, night)


@pytest.mark.parametrize(("chunk_epochs", "encode_epochs"), [(3, 1), (16, 5), (29, 256), (1024, 7)])
def test_predict_night_equals_padded_windows(
    night_and_expected: tuple[StagingNetwork, NightArrays, np.ndarray], chunk_epochs: int, encode_epochs: int
) -> None:
    model, night, expected = night_and_expected
    model.train()  # the torch backend must switch to eval itself
    probs = predict_night(model, night, chunk_epochs=chunk_epochs, encode_epochs=encode_epochs)
    assert not model.training
    assert probs.shape == (45, model.config.n_classes) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    diff = np.abs(probs - expected).max(axis=1)
    assert diff[: model.seq_len - 1].max() < TOL, "padded-context epochs differ"
    assert diff[model.seq_len - 1 :].max() < TOL, "full-context epochs differ"


def test_folding_batch_norm_for_inference_keeps_the_probabilities() -> None:
    import copy

    config = _config(seq_len=8)
    model = _model(config, seed=9)
    night = _night(config, n_epochs=30)
    expected = predict_night(model, night)
    folded = copy.deepcopy(model)
    folded.train()
    assert folded.for_inference() is folded and not folded.training
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert np.abs(predict_night(folded, night) - expected).max() < TOL


@pytest.mark.parametrize("stride", [5, 10, 20])
def test_first_block_stride_keeps_the_later_blocks_on_0_2_s_steps(stride: int) -> None:
    from somna.models.encoders import EpochCNN

    cnn = EpochCNN(3, width=8, stride=stride).eval()
    first = cnn.body[0]
    assert first[0].stride == (stride,)
    assert (first[3].kernel_size if stride < 20 else 1) * stride == 20
    with torch.no_grad():
        after_first = first(torch.randn(2, 3, 3000))
        assert after_first.shape == (2, 8, 150)
        assert cnn(torch.randn(2, 3, 3000)).shape == (2, 64)


def test_bad_first_block_stride_is_refused() -> None:
    from somna.models.encoders import EpochCNN

    with pytest.raises(ValueError, match="stride must be one of"):
        EpochCNN(3, stride=3)


def test_model_config_round_trips_and_refuses_unknown_settings() -> None:
    from somna.errors import SomnaError

    saved = _config(cnn_stride=10).to_dict()
    assert ModelConfig.from_dict(saved) == _config(cnn_stride=10)
    with pytest.raises(SomnaError, match="no_such_setting"):
        ModelConfig.from_dict({**saved, "no_such_setting": 1})


def test_checkpoint_round_trip_and_format_check(tmp_path) -> None:
    from somna.errors import CheckpointError
    from somna.models.checkpoint import model_from_checkpoint, save_checkpoint
    from somna.stages import AASM

    model = _model(_config(cnn_stride=5), seed=11)
    path = save_checkpoint(tmp_path / "model.pt", model, AASM, {"sfreq": 100.0})
    loaded, state = model_from_checkpoint(path)
    assert loaded.config == model.config and state["label_set"] == "aasm"
    night = _night(model.config, n_epochs=12)
    assert np.abs(predict_night(loaded, night) - predict_night(model, night)).max() < TOL
    state = torch.load(path, weights_only=True)
    state["format"] = "somna-checkpoint-1"  # written by an earlier version
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"another version of somna.*train the model again"):
        model_from_checkpoint(tmp_path / "old.pt")


def test_predict_night_shorter_than_context() -> None:
    config = _config(seq_len=12)
    model = _model(config, seed=6)
    night = _night(config, n_epochs=4)
    probs = predict_night(model, night, chunk_epochs=5)
    assert np.abs(probs - _explicit_probs(model, night)).max() < TOL


# --- chunk sampler ------------------------------------------------------------------------------------

SEQ, CHUNK, BATCH = 5, 12, 3
LENGTHS = (1, 4, 23, 50, 31)


def _id_nights() -> list[NightArrays]:
    """Nights whose signal value names (night, epoch): 10000 * (night + 1) + epoch + 1; 0 is padding."""
    rng = np.random.default_rng(0)
    nights = []
    for i, n in enumerate(LENGTHS):
        ids = (10000 * (i + 1) + np.arange(n) + 1).astype(np.float32)
        labels = rng.integers(0, 5, n)
        labels[rng.random(n) < 0.2] = UNSCORED
        signals = {
            "eeg": np.repeat(ids[:, None, None], 3, axis=2).repeat(2, axis=1),
            "emg": ids[:, None, None].copy(),
        }
        nights.append(NightArrays(f"R{i}", f"S{i}", signals, labels.astype(np.int64)))
    return nights


def _decode(value: float) -> tuple[int, int] | None:
    v = round(value)
    return None if v == 0 else (v // 10000 - 1, v % 10000 - 1)


def test_chunk_sampler_targets_every_scored_epoch_once_with_unscored_context() -> None:
    nights = _id_nights()
    sampler = ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=7)
    scored = {(i, t) for i, n in enumerate(nights) for t in range(n.n_epochs) if n.labels[t] != UNSCORED}
    assert sampler.n_targets == len(scored)
    for pass_index in (0, 1):
        seen: Counter[tuple[int, int]] = Counter()
        n_batches = 0
        for signals, targets in sampler.batches(pass_index):
            n_batches += 1
            assert targets.dtype == torch.int64 and targets.shape[1] == CHUNK
            assert signals["eeg"].shape[1:] == (CHUNK, 2, 3) and signals["emg"].shape[1:] == (CHUNK, 1, 1)
            assert torch.equal(signals["eeg"][:, :, 1, 2], signals["emg"][:, :, 0, 0])  # same epochs
            for row in range(targets.shape[0]):
                ids = [_decode(float(v)) for v in signals["emg"][row, :, 0, 0]]
                # leading padding repeats the night's first epoch: all but its last copy are padding
                firsts = [k for k, e in enumerate(ids) if e is not None and e[1] == 0]
                assert firsts == list(range(firsts[0], firsts[0] + len(firsts))) if firsts else True
                for k in firsts[:-1]:
                    ids[k] = None
                real = [k for k, e in enumerate(ids) if e is not None]
                night = ids[real[0]][0]
                # consecutive epochs of one night, padding only before its start or after its end
                assert [ids[k] for k in real] == [(night, ids[real[0]][1] + j) for j in range(len(real))]
                if real[0] > 0:  # leading padding only before the night's first epoch
                    assert ids[real[0]][1] == 0
                if real[-1] < CHUNK - 1:  # trailing padding only after the night's last epoch
                    assert ids[real[-1]][1] == nights[night].n_epochs - 1
                assert torch.all(targets[row, : SEQ - 1] == UNSCORED), "context positions must be unscored"
                for k in range(CHUNK):
                    target = int(targets[row, k])
                    if ids[k] is None:
                        assert target == UNSCORED
                    elif target != UNSCORED:
                        i, t = ids[k]
                        assert target == nights[i].labels[t]
                        seen[(i, t)] += 1
        assert n_batches == len(sampler)
        assert set(seen) == scored, f"missing {scored - set(seen)}, extra {set(seen) - scored}"
        assert max(seen.values()) == 1, [e for e, c in seen.items() if c > 1]


def test_chunk_sampler_leaves_out_chunks_without_a_scored_target() -> None:
    nights = _id_nights()
    for night in nights:  # stage 2 of hierarchical staging: long stretches of wake are unscored
        night.labels[: night.n_epochs * 2 // 3] = UNSCORED
    sampler = ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=3)
    scored = sum(int(np.sum(n.labels != UNSCORED)) for n in nights)
    seen = 0
    for _, targets in sampler.batches(0):
        per_chunk = (targets != UNSCORED).sum(dim=1)
        assert bool(torch.all(per_chunk > 0)), "a chunk without a target reached the loss"
        seen += int(per_chunk.sum())
    assert seen == scored == sampler.n_targets


def _order(sampler: ChunkSampler, pass_index: int) -> list[tuple[int, int] | None]:
    """First real epoch of every chunk of a pass, in order."""
    out = []
    for signals, _ in sampler.batches(pass_index):
        for row in signals["emg"][:, :, 0, 0]:
            out.append(next(_decode(float(v)) for v in row if v != 0))
    return out


def test_chunk_sampler_order_depends_only_on_seed_and_pass() -> None:
    nights = _id_nights()
    a = ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=11)
    first_passes = [_order(a, k) for k in range(3)]
    fresh = ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=11)
    assert _order(fresh, 2) == first_passes[2]  # a resumed run replays pass 2 without passes 0-1
    assert _order(fresh, 0) == first_passes[0]
    assert first_passes[0] != first_passes[1]
    assert first_passes[1] != first_passes[2]
    assert sorted(first_passes[0]) == sorted(first_passes[1])  # same chunks, other order
    assert _order(ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=12), 0) != first_passes[0]
    unshuffled = _order(ChunkSampler(nights, SEQ, CHUNK, BATCH, seed=11, shuffle=False), 0)
    assert unshuffled == sorted(unshuffled)  # night order, then time


def test_chunk_sampler_refuses_chunk_shorter_than_window() -> None:
    with pytest.raises(ValueError, match="chunk_len"):
        ChunkSampler(_id_nights(), seq_len=8, chunk_len=7)
