"""The `somna` command line: help everywhere, one-line errors, the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from somna.cli import _build_parser, main
from somna.config import load_config
from somna.errors import SomnaError

REPO = Path(__file__).resolve().parents[1]


def test_every_sub_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _build_parser()
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


def test_shipped_configs_load() -> None:
    for path in (REPO / "configs").glob("*.toml"):
        config = load_config(path)
        assert "eeg" in config.channels
    sleep_edf = load_config(REPO / "configs" / "sleep-edf.toml")
    assert sleep_edf.preprocess.eeg_band == (0.3, 35.0)
    assert sleep_edf.preprocess.trim_wake_min == 30.0


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[preprocess]\nsfreqq = 100\n")
    with pytest.raises(SomnaError, match=r"bad\.toml.*sfreqq"):
        load_config(bad)
    bad.write_text("[preprocess\n")
    with pytest.raises(SomnaError, match="not valid TOML"):
        load_config(bad)
    keep_all = tmp_path / "keep.toml"
    keep_all.write_text("[preprocess]\ntrim_wake_min = -1\n")
    assert load_config(keep_all).preprocess.trim_wake_min is None


def test_demo_toml_matches_the_built_in_demo_experiment() -> None:
    from somna.demo import DEMO_EXPERIMENT
    from somna.training.config import load_experiment

    assert load_experiment(REPO / "configs" / "demo.toml") == DEMO_EXPERIMENT


def test_train_into_an_unusable_run_folder_fails_before_training(small_cohort, tmp_path: Path) -> None:
    from somna.training.config import DataConfig, ExperimentConfig
    from somna.training.experiment import run_experiment

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    experiment = ExperimentConfig(data=DataConfig(cache=str(small_cohort.root)), model={"seq_len": 8})
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
    import argparse

    from somna.cli import _add_backend_argument
    from somna.staging import BACKENDS

    parser = argparse.ArgumentParser()
    _add_backend_argument(parser)
    action = next(a for a in parser._actions if a.dest == "backend")
    assert tuple(action.choices) == BACKENDS
