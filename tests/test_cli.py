"""The `somna` command line: help everywhere, one-line errors, the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from somna.cli import build_parser, main
from somna.config import load_cohort_config, load_experiment, packaged_configs
from somna.errors import SomnaError


def test_every_sub_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    expected = {"synth", "download", "prepare", "info", "train", "cv", "evaluate", "ablate", "compare-3class",
                "score", "metrics", "export", "stream", "demo"}  # fmt: skip
    assert expected <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: somna {name}" in capsys.readouterr().out


def test_somna_errors_are_one_line_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("somna: error: ") and "not a prepared cohort" in err
    assert "Traceback" not in err


def test_packaged_configs_load_by_name() -> None:
    names = packaged_configs()
    assert {"sleep-edf", "demo", "sleep-edf-20", "sleep-edf-78"} <= set(names)
    sleep_edf = load_cohort_config("sleep-edf")
    assert sleep_edf.preprocess.eeg_band == (0.3, 35.0)
    assert sleep_edf.preprocess.trim_wake_min == 30.0
    assert load_cohort_config("sleep-edf.toml") == sleep_edf
    for name in ("demo", "sleep-edf-20", "sleep-edf-78"):
        experiment = load_experiment(name)
        assert experiment.name == name and experiment.data.modalities == ("eeg", "eog", "emg")
        if experiment.data.cohort_config:
            load_cohort_config(experiment.data.cohort_config)  # the cohort config it names exists


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[preprocess]\nsfreqq = 100\n")
    with pytest.raises(SomnaError, match=r"bad\.toml.*sfreqq"):
        load_cohort_config(bad)
    bad.write_text("[preprocess\n")
    with pytest.raises(SomnaError, match="not valid TOML"):
        load_cohort_config(bad)
    bad.write_text("[preprocess]\neeg_band = [35.0, 0.3]\n")
    with pytest.raises(SomnaError, match=r"bad\.toml.*eeg_band"):
        load_cohort_config(bad)
    keep_all = tmp_path / "keep.toml"
    keep_all.write_text("[preprocess]\ntrim_wake_min = -1\n")
    assert load_cohort_config(keep_all).preprocess.trim_wake_min is None
    with pytest.raises(SomnaError, match=r"config file not found.*packaged configs: demo"):
        load_cohort_config("no-such-config")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[channels]\nfoo = [["Fz"]]\n', r"unknown modality \['foo'\]"),
        ('[channels]\neeg = "Fz"\n', "list of alias lists"),
        ("[preprocessing]\nsfreq = 100\n", r"unknown table.*preprocessing"),
        ("[preprocess]\nclip = -1\n", "clip must be a positive number"),
    ],
)
def test_cohort_config_unknown_or_bad_keys_are_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "cohort.toml"
    path.write_text(text)
    with pytest.raises(SomnaError, match=match):
        load_cohort_config(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[model]\nn_classes = 3\n", r"unknown key\(s\) \['n_classes'\] in \[model\]"),
        ("[model]\ncnn_widht = 8\n", "cnn_widht"),
        ('[training]\nclass_weights = "cubic"\n', r"\[training\] training class_weights must be one of"),
        ('[data]\nlabel_set = "9class"\n', "label_set"),
        ("[trainin]\nlr = 1\n", "unknown table"),
    ],
)
def test_experiment_config_unknown_or_bad_keys_are_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    with pytest.raises(SomnaError, match=match):
        load_experiment(path)


def test_train_into_an_unusable_run_folder_fails_before_training(small_cohort, tmp_path: Path) -> None:
    from somna.config import DataConfig, ExperimentConfig, ModelConfig
    from somna.training.experiment import run_experiment

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    experiment = ExperimentConfig(data=DataConfig(cache=str(small_cohort.root)), model=ModelConfig(seq_len=8))
    with pytest.raises(SomnaError, match="cannot write the output folder"):
        run_experiment(experiment, blocker / "run", mode="holdout", progress=False)
    assert not list(tmp_path.rglob("*.pt"))


def test_train_device_option_reaches_training(
    small_cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on CI, also where a GPU exists
    config = tmp_path / "gpu.toml"
    config.write_text(
        f'name = "gpu"\n[data]\ncache = "{small_cohort.root}"\n[model]\nseq_len = 8\n'
        '[training]\nmax_epochs = 1\ndevice = "cpu"\n'
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training device 'cuda' was asked for, but torch sees no GPU" in err
    assert not list(out.rglob("*.pt"))


def test_backend_choices_follow_the_stagers_backends() -> None:
    from somna.cli._options import BACKEND_CHOICES
    from somna.inference import BACKENDS

    assert BACKEND_CHOICES == BACKENDS


@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "x.edf", "--model", "m", "--chunk-s", "0"],
        ["stream", "x.edf", "--model", "m", "--chunk-s", "-1"],
        ["stream", "x.edf", "--model", "m", "--chunk-s", "nan"],
        ["stream", "x.edf", "--model", "m", "--threads", "0"],
        ["score", "x.edf", "--model", "m", "--workers", "0"],
        ["prepare", "a", "b", "--workers", "-2"],
    ],
)
def test_out_of_range_arguments_are_refused_at_parse_time(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
