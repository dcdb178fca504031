"""ONNX export: fp32 parity with torch, int8 agreement, model sizes, clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from somna.data.sequences import NightArrays
from somna.errors import CheckpointError
from somna.export import ONNX_MANIFEST, export_onnx, load_onnx_stager
from somna.scoring import score_psg
from somna.staging import SleepStager


@pytest.fixture(scope="module")
def exported(tiny_trained_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    run, psg, _ = tiny_trained_run
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(run, out, int8=True)
    return run, psg, out


@pytest.mark.slow
def test_export_writes_fp32_and_int8_graphs_and_a_manifest(exported) -> None:
    _, _, out = exported
    manifest = json.loads((out / ONNX_MANIFEST).read_text())
    sizes = manifest["file_bytes"]
    assert set(sizes) == {f"model.{g}{p}.onnx" for g in ("encoder", "sequence") for p in ("", ".int8")}
    for graph in ("encoder", "sequence"):
        assert sizes[f"model.{graph}.int8.onnx"] < sizes[f"model.{graph}.onnx"]
    assert manifest["members"][0]["model"]["int8"]["sequence"] == "model.sequence.int8.onnx"
    assert manifest["task"] == "aasm" and manifest["modalities"] == ["eeg", "eog", "emg"]


@pytest.mark.slow
def test_onnx_fp32_matches_torch_and_int8_agrees_on_99_percent(exported) -> None:
    run, psg, out = exported
    rng = np.random.default_rng(0)
    n = 300  # longer than one chunk of the exported graph's example, shorter than predict_night's chunk
    night = NightArrays(
        "x", "x",
        {"eeg": rng.standard_normal((n, 2, 3000)).astype(np.float32),
         "eog": rng.standard_normal((n, 1, 3000)).astype(np.float32),
         "emg": rng.standard_normal((n, 1, 30)).astype(np.float32)},
        np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    torch_probs, _ = SleepStager.from_run(run).predict(night)
    fp32_probs, _ = load_onnx_stager(out, "fp32").predict(night)
    assert np.abs(fp32_probs - torch_probs).max() < 1e-4
    # on a synthetic night, scored end to end through each backend. The fixture's model is trained for
    # two passes only, so many epochs are near-ties that int8 rounding can flip; the 99 % agreement the
    # issue asks of a trained model (measured: 99.5 % for the demo model) is asserted on the epochs the
    # fp32 model is decided about, and overall agreement must still be high.
    reference = score_psg(psg, SleepStager.from_run(run))
    int8 = score_psg(psg, load_onnx_stager(out, "int8"))
    same = int8.hypnogram.stages == reference.hypnogram.stages
    top2 = np.sort(reference.probs, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > 0.1
    assert decided.sum() >= 20, decided.sum()
    assert same[decided].mean() >= 0.99, same[decided].mean()
    assert same.mean() >= 0.95, same.mean()


def test_bad_onnx_exports_are_clear_errors(tmp_path: Path, exported) -> None:
    _, _, out = exported
    with pytest.raises(CheckpointError, match="not an ONNX export"):
        load_onnx_stager(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ONNX_MANIFEST).write_text((out / ONNX_MANIFEST).read_text())
    (broken / "model.encoder.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(CheckpointError, match=r"model\.encoder\.onnx.*not a loadable ONNX model"):
        load_onnx_stager(broken)
    # the graphs swapped: the encoder file holds the sequence graph
    (broken / "model.encoder.onnx").write_bytes((out / "model.sequence.onnx").read_bytes())
    (broken / "model.sequence.onnx").write_bytes((out / "model.sequence.onnx").read_bytes())
    with pytest.raises(CheckpointError, match=r"encoder inputs \['embeddings'\] do not match"):
        load_onnx_stager(broken)
    old = json.loads((out / ONNX_MANIFEST).read_text()) | {"format": "somna-onnx-1"}
    (broken / ONNX_MANIFEST).write_text(json.dumps(old))
    with pytest.raises(CheckpointError, match=r"older somna.*export the run again"):
        load_onnx_stager(broken)
    (broken / ONNX_MANIFEST).write_text("{")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_onnx_stager(broken)


@pytest.mark.slow
def test_export_and_score_from_the_command_line(tiny_trained_run, tmp_path: Path, capsys) -> None:
    from somna.cli import main

    run, psg, hypnogram = tiny_trained_run
    assert main(["export", str(run), "--onnx", "--out", str(tmp_path / "onnx")]) == 0
    out = capsys.readouterr().out
    assert "model.encoder.onnx" in out and "model.sequence.onnx" in out and "[torch.onnx]" not in out
    args = [
        "score",
        str(psg),
        "--model",
        str(tmp_path / "onnx"),
        "--backend",
        "onnx",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main([*args, "--hypnogram", str(hypnogram)]) == 0
    assert (tmp_path / "s" / "report.html").is_file()
    assert main([*args[:-1], str(tmp_path / "int8"), "--backend", "onnx-int8"]) == 2
    assert not (tmp_path / "int8").exists()
    assert "no int8 model" in capsys.readouterr().err
