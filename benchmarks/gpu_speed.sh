#!/usr/bin/env bash
# The GPU rows of notebook 07: the final recipe on Keras' JAX backend, timed per epoch and scored, on a machine
# that has JAX with CUDA and no TensorFlow (such as the device machines of this project's workplace): batch 32
# and 256 (the learning rate scaled), float32 and mixed_bfloat16, each row with the images/s of the input path
# alone and of the training step alone, and with DataParallel over every GPU when there are several. It writes
# results/backends_gpu.json (and a copy into $OUT when that is set); it must finish within 5 minutes (timeout).
#
# Prepare on a machine with the package registry, in the repository root (once):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0 mlxtend==0.25.0
#   make run    # or notebook 02: models/cnn.keras, the pretrained classifier (TensorFlow trains it)
# then send the tree with .whl and models carried, and run there:  bash benchmarks/gpu_speed.sh
# The GPU machine must already hold numpy, JAX with CUDA, h5py, ml-dtypes, rich, absl-py and packaging, and
# mlxtend's needs (scipy, scikit-learn, pandas, joblib, matplotlib).
set -euo pipefail
site=/tmp/m2nist-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
# The package from this tree, as an editable install would give it (nothing to build on a machine that
# cannot reach a registry); data/, models/ and results/ are this tree's, the current folder.
export PYTHONPATH="$site:$PWD" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
python3 -c "import jax; print('JAX', jax.__version__, jax.devices())"
gpus=$(python3 -c "import jax; print(jax.device_count())")
devices=1
if [ "$gpus" -gt 1 ]; then devices="1 $gpus"; fi
timeout 290 python3 benchmarks/backends.py --runs jax/numpy --batch-sizes 32 256 \
    --precisions float32 mixed_bfloat16 --devices $devices --out backends_gpu
if [ -n "${OUT:-}" ]; then cp results/backends_gpu.json "$OUT/"; fi
