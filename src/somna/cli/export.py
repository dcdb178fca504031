"""``somna export``: ONNX graphs of a trained run for onnxruntime and edge devices."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX (fp32, and int8) for onnxruntime and edge devices",
        description="Write two ONNX graphs per model of a run (per-epoch encoder, sequence part) plus "
        "somna-onnx.json (label set, modalities, preprocessing, channels, checkpoint checksums); --int8 adds "
        "dynamically quantised int8 graphs. Training runs export to RUN/onnx by themselves; `somna score` "
        "and `somna stream` use that export without torch. Use this command for int8 graphs or another "
        "folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "run", type=Path, help="run folder of `somna train`/`cv`, a fold folder, or a .pt checkpoint"
    )
    p.add_argument("--onnx", action="store_true", help="export to ONNX (the only format; kept for clarity)")
    p.add_argument("--int8", action="store_true", help="also write int8 graphs")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/onnx)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from somna.models.onnx import export_run

    manifest = export_run(args.run, args.out, int8=args.int8)
    out = args.out or (args.run if args.run.is_dir() else args.run.parent) / "onnx"
    for name, size in manifest["file_bytes"].items():
        print(f"  {out / name}  {size / 1024:.0f} KiB")
    backend = "onnx-int8" if args.int8 else "onnx"
    print(f"score with: somna score PSG.edf --model {out} --backend {backend}")
    print(f"stream with: somna stream PSG.edf --model {out} --backend {backend}")
