"""Your own scored recordings (issue 15): folders with any names, manifests, any montage.

The README's own-data recipe runs here on a folder of synthetic nights renamed as a sleep lab would name
them (``patient01_night1.edf`` + ``patient01_night1_hypnogram.edf``): prepare with ``--pair``, cross-validate
with a small experiment config, score a night. Re-referencing of monopolar channels, AASM spellings, the
one-EEG model (trained with a random derivation per night) and the warning for a channel in a slot the
model learnt from another derivation are checked on real code paths.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import somna
from somna.cli import main
from somna.data.cohort import Cohort, prepare_cohort
from somna.data.sources import pair_by_name, pair_by_pattern, read_cohort_manifest
from somna.errors import ChannelError, SomnaError
from somna.io import read_psg
from somna.io.edf_write import EdfChannel, write_psg_edf
from somna.synth import write_synthetic_cohort

PATTERN = r"(?P<subject>patient\d+)_night(?P<night>\d)"


@pytest.fixture(scope="module")
def own_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 2 nights of 1 h, renamed from Sleep-EDF's layout to a lab's."""
    root = tmp_path_factory.mktemp("own")
    write_synthetic_cohort(
        root / "synth", n_subjects=3, seed=11, hours=1.0, progress=False, variation="textbook"
    )
    own = root / "own"
    own.mkdir()
    for psg in sorted((root / "synth").glob("*-PSG.edf")):
        subject, night = int(psg.name[3:5]) + 1, int(psg.name[5])
        hypnogram = next((root / "synth").glob(f"{psg.name[:7]}*-Hypnogram.edf"))
        shutil.copy(psg, own / f"patient{subject:02d}_night{night}.edf")
        shutil.copy(hypnogram, own / f"patient{subject:02d}_night{night}_hypnogram.edf")
    return own


def test_pairing_by_pattern_keeps_a_subjects_nights_together(own_folder: Path) -> None:
    nights = pair_by_pattern(own_folder, PATTERN)
    assert [(n.subject, n.night) for n in nights] == [
        (f"patient{s:02d}", n) for s in (1, 2, 3) for n in (1, 2)
    ]
    assert all(n.hypnogram.name == n.psg.name.replace(".edf", "_hypnogram.edf") for n in nights)
    with pytest.raises(SomnaError, match="named group"):
        pair_by_pattern(own_folder, r"patient\d+")
    with pytest.raises(SomnaError, match="matches no PSG"):
        pair_by_pattern(own_folder, r"(?P<subject>nobody\d+)")


def test_pairing_by_name_pairs_every_night_as_its_own_subject(own_folder: Path, tmp_path: Path) -> None:
    nights = pair_by_name(own_folder)
    assert len(nights) == 6 and len({n.subject for n in nights}) == 6
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(own_folder / "patient01_night1.edf", lonely / "patient01_night1.edf")
    with pytest.raises(SomnaError, match="0 hypnogram"):
        pair_by_name(lonely)


def test_manifest_gives_subjects_nights_lights_and_channels(own_folder: Path, tmp_path: Path) -> None:
    rows = ["psg;hypnogram;subject;night;lights_off;eeg"]
    for psg in sorted(own_folder.glob("*night?.edf")):
        subject, night = psg.stem.split("_night")
        rows.append(f"{psg};{psg.stem}_hypnogram.edf;{subject};{night};600;Fpz-Cz,Pz-Oz")
    manifest = own_folder / "cohort.csv"
    manifest.write_text("\n".join(rows) + "\n")
    try:
        nights = read_cohort_manifest(manifest)
        assert len(nights) == 6 and nights[0].channels == {"eeg": "Fpz-Cz,Pz-Oz"}
        cohort = prepare_cohort(manifest, tmp_path / "cache", workers=1, progress=False)
    finally:
        manifest.unlink()
    assert cohort.subjects == ["patient01", "patient02", "patient03"]
    assert all(e.lights_off_s == 600 and e.lights_source == "the cohort manifest" for e in cohort.entries)
    assert all(e.channels["eeg"] == ["EEG Fpz-Cz", "EEG Pz-Oz"] for e in cohort.entries)
    bad = tmp_path / "bad.csv"
    bad.write_text("psg,hypnogram\nx.edf,y.edf\n")
    with pytest.raises(SomnaError, match="lacks the column"):
        read_cohort_manifest(bad)
    bad.write_text(f"psg,hypnogram,subject\n{own_folder}/missing.edf,y.edf,p1\n")
    with pytest.raises(SomnaError, match=r"row 2: psg .* does not exist"):
        read_cohort_manifest(bad)


def test_readme_own_data_recipe_runs_end_to_end(own_folder: Path, tmp_path: Path, capsys) -> None:
    """The README's recipe: prepare your folder, cross-validate, score a night with its report."""
    cache, run = tmp_path / "own-cache", tmp_path / "own-cv"
    assert main(["prepare", str(own_folder), str(cache), "--pair", PATTERN, "--workers", "1"]) == 0
    config = tmp_path / "own.toml"
    config.write_text(
        f'name = "own"\n[data]\ncache = "{cache}"\n'
        "[model]\nseq_len = 8\nembed_dim = 16\ncnn_width = 8\n"
        "[training]\nmax_epochs = 1\nbatch_size = 8\nchunk_len = 32\nthreads = 1\n"
        "[cv]\nn_folds = 3\nvalidation_fraction = 0.34\nseed = 0\n"
    )
    assert main(["cv", "--config", str(config), "--out", str(run)]) == 0
    folds = json.loads((run / "experiment.json").read_text())["folds"]
    tested = [s for fold in folds for s in fold["test"]]
    assert sorted(tested) == ["patient01", "patient02", "patient03"]  # each subject tested once, whole
    assert (run / "evaluation.md").is_file()
    capsys.readouterr()
    night = own_folder / "patient02_night1.edf"
    out = tmp_path / "scored"
    args = [
        "score",
        str(night),
        "--model",
        str(run),
        "--hypnogram",
        str(own_folder / "patient02_night1_hypnogram.edf"),
    ]
    assert main([*args, "--out", str(out)]) == 0
    assert "agreement with" in capsys.readouterr().out
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


def _monopolar(psg: Path, dest: Path) -> tuple[Path, np.ndarray]:
    """The night's Fpz-Cz stored as monopolar C4 and M1 (C4 = Fpz-Cz + M1), with its EOG and EMG."""
    rec = read_psg(psg)
    rng = np.random.default_rng(0)
    derivation = np.asarray(rec.signals["eeg"][0], dtype=np.float64)
    mastoid = rng.normal(0, 15, derivation.size)
    fs = rec.sfreq["eeg"]
    channels = [
        EdfChannel("EEG C4", derivation + mastoid, fs),
        EdfChannel("EEG M1", mastoid, fs),
        EdfChannel("EOG E1-A2", np.asarray(rec.signals["eog"][0], dtype=np.float64), rec.sfreq["eog"]),
        EdfChannel("EMG Chin", np.asarray(rec.signals["emg"][0], dtype=np.float64), rec.sfreq["emg"]),
    ]
    return write_psg_edf(dest, channels, datetime(2024, 3, 1, 22, 0)), derivation


def test_monopolar_channels_are_re_referenced(own_folder: Path, tmp_path: Path) -> None:
    path, derivation = _monopolar(own_folder / "patient01_night1.edf", tmp_path / "mono.edf")
    spec = somna.io.channel_spec(eeg="C4-M1|C4:M1", eog="E1-M2", emg="Chin")
    rec = read_psg(path, channels=spec)
    assert rec.channel_names["eeg"] == ["EEG C4-M1"] and rec.channel_names["eog"] == ["EOG E1-A2"]
    assert np.allclose(rec.signals["eeg"][0], derivation, atol=0.1)  # EDF's 16 bits over ±500 µV
    with pytest.raises(ChannelError, match="references a channel to itself"):
        read_psg(path, channels=somna.io.channel_spec(eeg="C4:C4", eog="E1-M2", emg="Chin"))


def test_one_eeg_model_scores_a_one_eeg_recording(own_folder: Path, tmp_path: Path) -> None:
    from somna.config import (
        CVConfig,
        DataConfig,
        ExperimentConfig,
        ModelConfig,
        TrainConfig,
        load_cohort_config,
    )
    from somna.training.experiment import run_experiment

    config = load_cohort_config("synthetic-one-eeg")
    cohort = prepare_cohort(
        own_folder, tmp_path / "cache", config=config, workers=1, progress=False, pair=PATTERN
    )
    drawn = {e.channels["eeg"][0] for e in cohort.entries}
    assert drawn == {"EEG Fpz-Cz", "EEG Pz-Oz"}, drawn  # a derivation drawn per night, both used
    again = prepare_cohort(
        own_folder, tmp_path / "cache2", config=config, workers=1, progress=False, pair=PATTERN
    )
    assert [e.channels for e in again.entries] == [e.channels for e in cohort.entries]  # reproducible
    experiment = ExperimentConfig(
        name="one-eeg",
        data=DataConfig(cache=str(tmp_path / "cache")),
        model=ModelConfig(embed_dim=16, cnn_width=8, seq_len=8),
        training=TrainConfig(max_epochs=1, batch_size=8, chunk_len=32, threads=1),
        cv=CVConfig(test_fraction=0.34, validation_fraction=0.5, seed=0),
    )
    run_experiment(experiment, tmp_path / "run", mode="holdout", progress=False)
    stager = somna.load_stager(tmp_path / "run")
    assert stager.n_chans == {"eeg": 1, "eog": 1, "emg": 1}
    path, _ = _monopolar(own_folder / "patient03_night2.edf", tmp_path / "mono.edf")
    hypnogram = stager.predict(path)  # C4:M1 is among the model's names: no --eeg needed
    assert (
        len(hypnogram)
        == read_psg(path, somna.io.channel_spec(eeg="C4:M1", eog="E1-M2", emg="Chin")).n_epochs()
    )
    assert hypnogram.info["channels"]["eeg"] == ["EEG C4-M1"]
    assert not any("slot" in w for w in hypnogram.info["warnings"])
    assert Cohort.open(tmp_path / "cache").manifest["config"]["channel_choice"] == "random"


def test_a_channel_in_a_slot_learnt_from_another_derivation_is_warned(
    tiny_trained_run, tmp_path: Path
) -> None:
    run, psg, _ = tiny_trained_run
    rec = read_psg(psg)
    channels = [
        EdfChannel(name, np.asarray(x, dtype=np.float64), rec.sfreq[m])
        for m, names in (("eeg", ["C4-M1", "O2-M1"]), ("eog", ["E1-M2"]), ("emg", ["Chin1-Chin2"]))
        for name, x in zip(names, rec.signals[m], strict=True)
    ]
    aasm = write_psg_edf(tmp_path / "aasm.edf", channels, rec.start)
    stager = somna.load_stager(run)
    hypnogram = stager.predict(aasm, eeg="C4-M1,O2-M1", eog="E1-M2", emg="Chin1-Chin2")
    warning = next(w for w in hypnogram.info["warnings"] if "slot" in w)
    assert "EEG slot 1 holds 'C4-M1'; the model learnt it from 'EEG Fpz-Cz'" in warning
    assert "EOG slot 1 holds 'E1-M2'" in warning
    assert not any("slot" in w for w in stager.predict(psg).info["warnings"])


def test_a_one_eeg_recording_and_a_two_eeg_model_get_a_way_forward(tiny_trained_run, tmp_path: Path) -> None:
    run, psg, _ = tiny_trained_run
    rec = read_psg(psg)
    channels = [
        EdfChannel("C4-M1", np.asarray(rec.signals["eeg"][0], dtype=np.float64), rec.sfreq["eeg"]),
        EdfChannel("E1-M2", np.asarray(rec.signals["eog"][0], dtype=np.float64), rec.sfreq["eog"]),
        EdfChannel("Chin1-Chin2", np.asarray(rec.signals["emg"][0], dtype=np.float64), rec.sfreq["emg"]),
    ]
    one = write_psg_edf(tmp_path / "one.edf", channels, rec.start)
    stager = somna.load_stager(run)
    assert stager.describe_inputs().startswith("EEG ×2 (EEG Fpz-Cz, EEG Pz-Oz), EOG ×1")
    with pytest.raises(ChannelError, match=r"reads 2 EEG channel.*use a one-EEG model"):
        stager.predict(one, eeg="C4-M1", eog="E1-M2", emg="Chin1-Chin2")
    with pytest.raises(ChannelError, match="would serve two eeg slots"):
        stager.predict(one, eeg="C4-M1,C4-M1", eog="E1-M2", emg="Chin1-Chin2")


def test_hypnogram_dir_pairs_own_names(own_folder: Path) -> None:
    from somna.inference.batch import pair_hypnograms

    psgs = sorted(own_folder.glob("*night?.edf"))
    pairs = pair_hypnograms(psgs, own_folder)
    assert len(pairs) == 6
    assert all(pairs[p].name == p.stem + "_hypnogram.edf" for p in psgs)
