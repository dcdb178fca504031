"""The main job on built-in data: synthesise a Sleep-EDF-like cohort, prepare it and describe it."""

from __future__ import annotations

import time
from pathlib import Path

from somna.data import Cohort, prepare_cohort
from somna.synth import write_synthetic_cohort

__all__ = ["run_demo"]


def run_demo(out: Path, n_subjects: int = 6, seed: int = 0, workers: int = 2) -> Cohort:
    """Synthesise ``n_subjects`` × 2 nights, prepare the cohort and write the per-stage spectra figure.

    Parameters
    ----------
    out : Path
        Run folder; holds ``edf/`` (the synthetic Sleep-EDF files), ``cache/`` (the prepared cohort) and
        ``stage_spectra.png``. Rerunning reuses what is already there.
    n_subjects : int
        Synthetic subjects, two nights each.
    seed : int
        Random seed of the synthetic cohort.
    workers : int
        Parallel processes for preparing.

    Returns
    -------
    Cohort
        The prepared cohort.
    """
    from somna.cli import _print_stage_table
    from somna.plotting import plot_cohort_spectra

    out = Path(out)
    edf_dir = out / "edf"
    t0 = time.perf_counter()
    if not any(edf_dir.glob("*-PSG.edf")):
        print(f"[1/3] synthesising {n_subjects} subjects x 2 nights (Sleep-EDF SC layout) into {edf_dir}")
        write_synthetic_cohort(edf_dir, n_subjects=n_subjects, layout="sc", seed=seed, nights=2)
    else:
        print(f"[1/3] reusing the synthetic cohort in {edf_dir}")
    print(f"[2/3] preparing the cohort cache in {out / 'cache'}")
    cohort = prepare_cohort(edf_dir, out / "cache", workers=workers)
    print(f"{cohort!r}; per-subject epochs per stage after trimming to the sleep period ± 30 min:")
    _print_stage_table(cohort)
    figure = plot_cohort_spectra(cohort, out / "stage_spectra.png")
    print(f"[3/3] per-stage EEG/EOG spectra written to {figure}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return cohort
