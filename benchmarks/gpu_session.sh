#!/usr/bin/env bash
# The GPU part of the benchmarks, as run on a lent GPU machine (one short session, nothing to download).
#
# On the GPU machine: its own python3 (torch with CUDA, torchaudio) plus wheels carried in .whl/ (mne, edfio,
# braindecode and their missing dependencies, installed with --no-deps into /tmp/site), somna from src/.
# SOMNA_SHARED_DATA may point to a copy of ../shared/data (the synthetic cohort follows its real Sleep-EDF
# hypnograms; without it the generator's Markov stage sequences are used).
#
#   bash benchmarks/gpu_session.sh OUT_DIR [BUDGET_S]
#
# 1. the demo cohort (8 synthetic subjects, seed 0), synthesised and prepared there;
# 2. `somna train --device cuda` twice, two passes each: the best checkpoints must be identical (GPU
#    determinism), and the run must use the GPU;
# 3. benchmarks/vs_braindecode.py --device cuda: somna, AttnSleep and USleep on the same holdout fold,
#    BUDGET_S seconds of training each (results/vs_braindecode_cuda.json, with the card's name).
set -euo pipefail
out=${1:?usage: gpu_session.sh OUT_DIR [BUDGET_S]}
budget=${2:-60}
python=${PYTHON:-python3}
work=${WORK:-/tmp/somna-gpu}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$python" -c "import torch, mne, edfio; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO GPU')"

t0=$(date +%s)
[ -f "$work/edf/.done" ] || { "$python" -m somna synth --subjects 8 --seed 0 --out "$work/edf" && touch "$work/edf/.done"; }
"$python" -m somna prepare "$work/edf" "$work/cache" --workers "${WORKERS:-8}"
echo "cohort ready after $(($(date +%s) - t0)) s"

cat > "$work/check.toml" <<EOF
name = "gpu-check"
[data]
cache = "$work/cache"
[training]
max_epochs = 2
threads = 4
EOF
for run in a b; do
    rm -rf "$work/check-$run"
    "$python" -m somna train --config "$work/check.toml" --device "${DEVICE:-cuda}" --out "$work/check-$run" \
        2>&1 | grep -v "^\s*$" | tail -n 4
done
"$python" - "$work" <<'EOF' | tee "$out/gpu_determinism.txt"
import sys, torch
from pathlib import Path
from somna.models.checkpoint import load_checkpoint
work = Path(sys.argv[1])
a, b = (load_checkpoint(next((work / f"check-{r}").rglob("best.pt"))) for r in "ab")
same = all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
diff = max((a["model_state"][k].float() - b["model_state"][k].float()).abs().max().item() for k in a["model_state"])
print(f"train_config.device={a['train_config']['device']!r}; two runs, same seed: "
      f"identical weights={same}, max |difference|={diff:.3g}")
EOF

"$python" benchmarks/vs_braindecode.py --device "${DEVICE:-cuda}" --peer-python "${PEER_PYTHON:-$python}" --cache "$work/cache" \
    --work "$work/vs-braindecode" --budget "$budget" --threads "${THREADS:-8}" --peers attnsleep usleep
cp benchmarks/results/vs_braindecode_*.json "$out/" 2>/dev/null || true
echo "done after $(($(date +%s) - t0)) s"
