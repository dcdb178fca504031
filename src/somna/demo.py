"""The main job on built-in data: synthesise a Sleep-EDF-like cohort, prepare it, train, evaluate, score."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from somna.config import load_cohort_config, load_experiment

__all__ = ["run_demo"]


def run_demo(out: Path, n_subjects: int = 8, seed: int = 0, workers: int = 2) -> dict[str, Any]:
    """Synthesise, prepare, train and evaluate 5-class and hierarchical 3-class models, score one night.

    The experiment is the packaged ``demo`` config (``somna train --config demo`` runs the same).

    Parameters
    ----------
    out : Path
        Run folder; holds ``edf/`` (synthetic Sleep-EDF files), ``cache/`` (prepared cohort),
        ``stage_spectra.png``, ``model/`` (5-class: checkpoints, ONNX export, predictions,
        ``evaluation.md``, ``confusion_matrix.png``), ``hierarchical/`` (the same for 3-class) and
        ``score/<record>/`` (one held-out night scored: hypnogram, probabilities, metrics,
        ``report.html``). Rerunning reuses what is already there.
    n_subjects : int
        Synthetic subjects, two nights each.
    seed : int
        Seed of the synthetic cohort.
    workers : int
        Parallel processes for preparing.

    Returns
    -------
    dict
        Pooled agreement on the test subjects (synthetic nights).
    """
    from somna.data import Cohort, prepare_cohort
    from somna.evaluation.sleep_metrics import METRIC_LABELS, format_metrics_table
    from somna.inference import load_stager
    from somna.inference.scoring import ScoreOptions, score_psg, write_scored_night
    from somna.io.lights import read_lights_table
    from somna.report.figures import save_figure
    from somna.report.spectra import cohort_stage_spectra, plot_stage_spectra
    from somna.stages import HIERARCHICAL
    from somna.synth import write_synthetic_cohort
    from somna.synth.cohort import LIGHTS_TABLE
    from somna.training.experiment import run_experiment

    out = Path(out)
    edf_dir = out / "edf"
    t0 = time.perf_counter()
    if not any(edf_dir.glob("*-PSG.edf")):
        print(f"[1/6] synthesising {n_subjects} subjects x 2 nights (Sleep-EDF SC layout) into {edf_dir}")
        write_synthetic_cohort(edf_dir, n_subjects=n_subjects, layout="sc", seed=seed, nights=2)
    else:
        print(f"[1/6] reusing the synthetic cohort in {edf_dir}")
    print(f"[2/6] preparing the cohort cache in {out / 'cache'}")
    cohort = prepare_cohort(edf_dir, out / "cache", config=load_cohort_config("synthetic"), workers=workers)
    print(f"{cohort!r}; epochs per stage after trimming to the sleep period ± 30 min:")
    print(cohort.format_stage_table())
    spectra = cohort_stage_spectra(Cohort.open(out / "cache", verify=False))
    title = f"Mean spectrum per stage, {len(cohort)} synthetic nights of {len(cohort.subjects)} subjects"
    figure = save_figure(
        plot_stage_spectra(spectra, title=title, unit="normalised units²/Hz"), out / "stage_spectra.png"
    )
    print(f"[3/6] per-stage EEG/EOG spectra written to {figure}")
    demo = load_experiment("demo")
    experiment = replace(demo, data=replace(demo.data, cache=str(out / "cache")))
    print("[4/6] training the 5-class model (EEG+EOG+EMG) on a subject-wise train/validation/test split")
    pooled = run_experiment(experiment, out / "model", mode="holdout")
    print("[5/6] hierarchical 3-class staging on the same split: Wake vs Sleep, then REM vs NREM on sleep")
    hierarchical = replace(
        experiment,
        name="demo-hierarchical",
        data=replace(experiment.data, label_set=HIERARCHICAL),
        training=replace(experiment.training, max_epochs=8),
    )
    run_experiment(hierarchical, out / "hierarchical", mode="holdout")
    test_subject = json.loads((out / "model" / "experiment.json").read_text())["folds"][0]["test"][0]
    entry = next(e for e in cohort.entries if e.subject_id == test_subject)
    print(
        f"[6/6] scoring held-out night {Path(entry.psg).name} with the 5-class model, against its hypnogram"
    )
    table = edf_dir / LIGHTS_TABLE  # the synthetic nights' lights off and on, as Sleep-EDF's subject table
    options = ScoreOptions(table=read_lights_table(table), table_name=table.name) if table.is_file() else None
    scored = score_psg(entry.psg, load_stager(out / "model"), reference=entry.hypnogram, options=options)
    paths = write_scored_night(scored, out / "score" / entry.record)
    print(format_metrics_table(scored.metrics))
    if scored.agreement is not None and scored.reference_metrics is not None:
        a = scored.agreement
        print(
            f"agreement with the scored hypnogram: accuracy {a['accuracy']:.3f}, kappa {a['cohen_kappa']:.3f}"
        )
        print("scored vs estimated, same time in bed:")
        for key in ("tst_min", "sleep_latency_min", "rem_latency_min", "waso_min", "sleep_efficiency_pct"):
            ref, est = scored.reference_metrics[key], scored.metrics[key]
            text = "–" if ref is None or est is None else f"{ref:.1f} vs {est:.1f}"
            print(f"  {METRIC_LABELS[key]:<44} {text}")
    print(f"night report: {paths['report']}")
    print(f"done in {time.perf_counter() - t0:.0f} s; models and reports in {out}")
    print("All numbers above come from synthetic nights (somna's own generator), not real recordings.")
    print(f"next: somna score PSG.edf --model {out / 'model'}")
    print(f"      somna stream {entry.psg} --model {out / 'model'}")
    return pooled
