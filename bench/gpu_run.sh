#!/usr/bin/env bash
# One call on the lent GPU machine (see ../shared/docs/gpu.md): install the carried wheels, then run one stage of
# the GPU benchmarks. Inputs travel in .device/ (wheels, data/, job/); everything it makes goes to $OUT.
# Scenes travel compressed (.device/data/<scene>/point_cloud.ply.gz or .xz, beside orbit_cameras.json; the three
# with the wheels fit in the 64 MiB a call carries) and are unpacked to /tmp/data; paintings in .device/data/styles.
#   grad:  bench/sos_grad.py (1080p/4K/8K)           sweep: learning-rate sweep at 1080p on flowers
#   uhr:   flowers at 4K and 8K under --max-gpu-mem 24  job:   the add-on's job folder (.device/job), 1080p
#   cudnn: 1080p and 4K steps with and without cuDNN autotuning
#   quality: bench/quality.py for each "scene:painting" in $QUALITY_RUNS with $QUALITY_VARIANTS (1920 px, 600 it.)
#   detail:  bench/densify.py for each "scene:painting" in $DETAIL_RUNS at $DETAIL_RES with $DETAIL_VARIANTS
#   preview: bench/preview_time.py on flowers and guitar       speed: bench/speed.py on flowers ($SPEED_ARGS)
# Usage: bench/gpu_run.sh STAGE [STAGE...]
set -uo pipefail
stages=" $* "
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 PYTHONUNBUFFERED=1
DATA=/tmp/data
STYLES=$PWD/.device/data/styles
STYLE=$STYLES/vangogh_starry_night_over_the_rhone_2000px.jpg
for folder in .device/data/*/; do
  scene=$(basename "$folder"); [ "$scene" = styles ] && continue
  mkdir -p "$DATA/$scene" && cp "$folder"/*.json "$DATA/$scene/"
  if [ -f "$folder/point_cloud.ply.gz" ]; then gzip -dc "$folder/point_cloud.ply.gz" > "$DATA/$scene/point_cloud.ply"
  elif [ -f "$folder/point_cloud.ply.xz" ]; then xz -dc "$folder/point_cloud.ply.xz" > "$DATA/$scene/point_cloud.ply"
  else cp "$folder/point_cloud.ply" "$DATA/$scene/"; fi
done
RES=$OUT/results
mkdir -p "$RES"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RES/gpu.txt"
t0=$(date +%s)
python3 -c "import torch; from core.renderer import render_smoke_test; render_smoke_test('cuda')" 2>&1 | tail -3
echo "gsplat ready after $(( $(date +%s) - t0 )) s"

if [[ $stages == *" grad "* ]]; then
  python3 bench/sos_grad.py --budget-s "${SOS_BUDGET:-230}" --style "$STYLE" --json "$RES/sos_grad.json" \
    2>&1 | tee "$RES/sos_grad.log"
fi
if [[ $stages == *" sweep "* ]]; then
  python3 bench/stylize_scene.py --scene "$DATA/flowers" --style "$STYLE" --resolution 1920 \
    --iterations "${SWEEP_ITERS:-400}" --lr "${SWEEP_LRS:-0.005,0.01,0.02,0.05}" --out "$RES/sweep_1080p" \
    2>&1 | tee "$RES/sweep.log"
fi
if [[ $stages == *" uhr "* ]]; then
  for res in 3840 7680; do
    python3 bench/stylize_scene.py --scene "$DATA/flowers" --style "$STYLE" --resolution $res \
      --iterations "${UHR_ITERS:-200}" --lr "${UHR_LR:-0.05}" --max-gpu-mem 24 --crop 1024 \
      --out "$RES/flowers_$res" 2>&1 | tee "$RES/uhr_$res.log"
  done
fi
if [[ $stages == *" cudnn "* ]]; then
  for res in 1920 3840; do
    for mode in on off; do
      flag=$([ $mode = on ] && echo --cudnn-benchmark)
      python3 bench/stylize_scene.py --scene "$DATA/flowers" --style "$STYLE" --resolution $res --iterations 150 \
        --max-gpu-mem 24 $flag --out "$RES/cudnn_${mode}_$res" 2>&1 | grep -v Warn | tee -a "$RES/cudnn.log"
    done
  done
fi
if [[ $stages == *" quality "* ]]; then
  for run in ${QUALITY_RUNS:-portrait:kandinsky_composition_vii}; do
    scene=${run%%:*}; painting=${run#*:}
    python3 bench/quality.py --scene "$DATA/$scene" --style "$STYLES/$painting.jpg" \
      --resolution "${QUALITY_RES:-1920}" --iterations "${QUALITY_ITERS:-600}" --variants "${QUALITY_VARIANTS:-}" \
      --sheet-views "${QUALITY_SHEET:-0,5,6}" --sheet-cell 480 --out "$RES/quality_${scene}_${painting%%_*}" \
      2>&1 | grep -v Warn | tee -a "$RES/quality.log"
  done
fi
if [[ $stages == *" detail "* ]]; then
  for run in ${DETAIL_RUNS:-portrait:kandinsky_composition_vii}; do
    scene=${run%%:*}; painting=${run#*:}
    python3 bench/densify.py --scene "$DATA/$scene" --style "$STYLES/$painting.jpg" --aspect "${DETAIL_ASPECT:-1}" \
      --resolution "${DETAIL_RES:-3840}" --iterations "${DETAIL_ITERS:-300}" --max-gpu-mem 24 \
      --variants "${DETAIL_VARIANTS:-}" --out "$RES/detail_${scene}_${DETAIL_RES:-3840}" \
      2>&1 | grep -v Warn | tee -a "$RES/detail.log"
  done
fi
if [[ $stages == *" preview "* ]]; then
  for scene in flowers guitar; do
    echo "$scene: $(python3 bench/preview_time.py --scene "$DATA/$scene" --style "$STYLE" 2>&1 | grep -v Warn)" \
      | tee -a "$RES/preview_time.log"
  done
fi
if [[ $stages == *" speed "* ]]; then
  mkdir -p "$RES/speed"
  python3 bench/speed.py --scene "$DATA/flowers" --style "$STYLE" ${SPEED_ARGS:-} --out "$RES/speed" \
    2>&1 | grep -v Warn | tee "$RES/speed/speed.log"
fi
if [[ $stages == *" job "* ]]; then
    # The add-on's scene.ply is byte-identical to flowers (checked with cmp before carrying), so it is not carried.
    [ -f .device/job/scene.ply ] || cp "$DATA/flowers/point_cloud.ply" .device/job/scene.ply
    (cd .device/job && python3 -m core @args.txt --json-progress > "$RES/job_progress.jsonl" 2> "$RES/job_stderr.txt")
    echo "job exit code $?"; tail -2 "$RES/job_progress.jsonl"
    mkdir -p "$RES/job" && cp .device/job/out/before_after_*.png .device/job/out/report.json "$RES/job/"
fi
rm -f "$RES"/*/*.ply
python3 - <<'PY'  # PNG -> JPEG so that the images fit in what comes back from the machine
import glob, os
from PIL import Image
for path in glob.glob(os.environ["OUT"] + "/results/**/*.png", recursive=True):
    image = Image.open(path).convert("RGB")
    image.save(path[:-4] + ".jpg", quality=90)
    os.remove(path)
PY
for d in "$RES"/*/; do tar -czf "$OUT/$(basename "$d").tar.gz" -C "$RES" "$(basename "$d")" && rm -rf "$d"; done
tar -czf "$OUT/results.tar.gz" -C "$OUT" results && rm -rf "$RES"
ls -la "$OUT"
