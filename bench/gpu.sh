#!/usr/bin/env bash
# Issue 10's accelerator table in one command: the SRU (auto, loop, loop
# unrolled 8, parallel scan; state_gates True and False) against its matmul
# floor, Keras LSTM/GRU on JAX and torch's cuDNN LSTM, forward and
# forward+backward, B in {8, 32}, T = 16..2048, d=512 (`bench/sru.py
# --preset gpu`). For a machine with JAX + CUDA and PyTorch but no
# TensorFlow and no keras:
#
#   bash bench/gpu.sh > sru_gpu.json          # table on stderr, JSON on stdout
#
# Python packages the machine lacks travel as wheels in .whl/, fetched on a
# machine with internet (keras, namex, optree, and packaging and typing_extensions
# in case the machine lacks them, for Keras; av, tqdm, filelock
# because `import mrrn_keras` imports them):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d .whl keras namex optree packaging typing_extensions av tqdm filelock
#
# and are installed into .pydeps/ here, once. Arguments go on to bench/sru.py
# and override the preset, e.g. the CPU smoke run the tests do:
#
#   bash bench/gpu.sh --shapes 2x8x16 --repeats 3
#
# With `motion` first, it runs bench/motion_probe.py instead (a training run
# on rendered motion clips, no TensorFlow needed), with the arguments after it:
#
#   bash bench/gpu.sh motion --size 128 --epochs 60 --model '{"backbone_width": 0.5}'
#
# With `train` first, it runs bench/train.py: end-to-end training clips/s of
# mrrn_r34.paper at 12x224², batch 30, on in-memory clips and through the
# TensorFlow-free loader reading rendered 320x240 videos (loader / consumption):
#
#   bash bench/gpu.sh train > train_gpu.json
#
# With `motion-retrain` first, it runs recipes/train_motion.py (the mrrn_tiny.motion
# retrain, `mrrn_keras.finetune` under JAX) with the arguments after it:
#
#   bash bench/gpu.sh motion-retrain --out=runs/motion --zoo_entry=runs/mrrn_tiny.motion
#
# Those two train through the package, so they also need absl-py (the recipes' flags) and
# pillow (the loader's resizing) where the machine lacks them: add `absl-py pillow` to the
# pip download line above (and h5py rich ml_dtypes, Keras's own, if the machine lacks them).
# The ten wheels of that line came to 45.7 MB on 2026-12-07 (av 35.0, pillow 7.1, keras 2.4;
# 51.9 MB with h5py, rich and ml_dtypes), under the 60 MB a device call may carry.
# matplotlib is optional: without it a run leaves out its two PNG plots (with a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
# Set before anything imports keras: its default backend would import TensorFlow.
export KERAS_BACKEND=jax
needed="import keras, av, tqdm, filelock"
case "${1:-}" in
  train|motion-retrain) needed="$needed, absl, PIL" ;;
esac
if ! python -c "$needed" 2>/dev/null; then
  if [ ! -d .pydeps ]; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
      echo "bench/gpu.sh: '$needed' fails and there are no wheels in $PWD/.whl;" \
        "fetch them with the pip download command at the top of this script." >&2
      exit 2
    fi
    python -m pip install --quiet --no-deps --no-index --target .pydeps .whl/*.whl
  fi
  export PYTHONPATH=".pydeps${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# JAX would otherwise take 75% of the GPU's memory and leave torch little.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
case "${1:-}" in
  motion) shift; exec python bench/motion_probe.py "$@" ;;
  train) shift; exec python bench/train.py "$@" ;;
  motion-retrain) shift; exec python recipes/train_motion.py "$@" ;;
esac
exec python bench/sru.py --preset gpu "$@"
