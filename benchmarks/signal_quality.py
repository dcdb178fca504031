"""Signal-quality checks against the truth: synthetic nights whose generator recorded every fault it drew.

``somna synth`` (generator 2.0.0, broad variation) records in ``synthetic.json`` what it did to each night,
among which a flat lead (``flat_hours``: one EEG derivation off for that long) and amplifier clipping
(``clip_uv``: EEG and EOG clipped at ± that many µV). This script runs
:func:`somna.preprocess.signal_quality.assess_signal_quality` on every night of a folder and compares:

* flat lead: nights with ``flat_hours`` > 0 warned about (and flat epochs found vs. the hours drawn);
* clipping: nights with ``clip_uv`` warned about as clipped;
* false alarms: warnings on nights with neither fault (a night's movement and sweat artefacts can still
  reach the EDF file's physical range, which is clipping too, reported separately).

Run (after ``make demo``)::

    .venv/bin/python benchmarks/signal_quality.py --edf runs/demo/edf

Writes ``benchmarks/results/signal_quality.json``. Synthetic nights only: it says whether the rules find
the faults the generator put in, not how often real recordings have them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

from somna.config import load_cohort_config
from somna.io import read_psg
from somna.preprocess.signal_quality import assess_signal_quality


def _night(path: Path, variation: dict[str, Any], channels: Any) -> dict[str, Any]:
    recording = read_psg(path, channels=channels)
    quality = assess_signal_quality(recording)
    summary = quality.to_dict()
    flat_epochs = max(c["flat_epochs"] for c in summary["channels"].values())
    warned = quality.warnings()[:-1]
    return {
        "night": path.name,
        "flat_hours": variation.get("flat_hours") or 0.0,
        "clip_uv": variation.get("clip_uv"),
        "flat_epochs_found": flat_epochs,
        "flat_warned": any("flat" in w or "disconnected" in w for w in warned),
        "clipped_warned": any("clipped" in w for w in warned),
        "affected_epochs": summary["affected_epochs"],
        "n_epochs": summary["n_epochs"],
        "warnings": warned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edf", type=Path, default=Path("runs/demo/edf"), help="folder of `somna synth`")
    args = parser.parse_args()
    meta = json.loads((args.edf / "synthetic.json").read_text())
    channels = load_cohort_config("synthetic").channels
    nights = [
        _night(path, meta["night_variation"].get(path.name, {}), channels)
        for path in sorted(args.edf.glob("*-PSG.edf"))
    ]
    flat = [n for n in nights if n["flat_hours"] > 0]
    clipped = [n for n in nights if n["clip_uv"] is not None]
    clean = [n for n in nights if n["flat_hours"] == 0 and n["clip_uv"] is None]
    result = {
        "command": f"python benchmarks/signal_quality.py --edf {args.edf}",
        "data": f"synthetic nights in {args.edf} (somna's generator {meta.get('generator_version')}), "
        "faults as the generator recorded them",
        "flat_lead_found": f"{sum(n['flat_warned'] for n in flat)} of {len(flat)}",
        "clipping_found": f"{sum(n['clipped_warned'] for n in clipped)} of {len(clipped)}",
        "clean_nights_with_flat_warning": f"{sum(n['flat_warned'] for n in clean)} of {len(clean)}",
        "clean_nights_with_clipping_warning": f"{sum(n['clipped_warned'] for n in clean)} of {len(clean)}",
        "nights": nights,
    }
    for n in nights:
        print(
            f"{n['night']}: flat lead {n['flat_hours']:.2f} h drawn, {n['flat_epochs_found']} flat epochs "
            f"found ({n['flat_hours'] * 120:.0f} expected); clip {n['clip_uv'] or '-'} µV; "
            f"warned: {'; '.join(n['warnings']) or 'nothing'}"
        )
    for key in (
        "flat_lead_found",
        "clipping_found",
        "clean_nights_with_flat_warning",
        "clean_nights_with_clipping_warning",
    ):
        print(f"{key}: {result[key]}")
    write_result("signal_quality", result)


if __name__ == "__main__":
    main()
