#!/usr/bin/env bash
# Run every check CI runs: the library matches the notebooks, the notebooks are clean,
# every notebook runs (quick mode), and the pytest suite passes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export MPLBACKEND=Agg
echo "== nbdev_export leaves cnn_course/ unchanged"
nbdev_export
if [ -n "$(git status --porcelain -- cnn_course)" ]; then
  git status --porcelain -- cnn_course; git diff --stat -- cnn_course
  echo "cnn_course/ is out of date: run nbdev_export and commit the result"; exit 1
fi
echo "== nbdev_clean leaves nbs/ unchanged"
nbdev_clean
if [ -n "$(git status --porcelain -- nbs)" ]; then
  git status --porcelain -- nbs
  echo "notebooks are not clean: run nbdev_clean and commit the result"; exit 1
fi
echo "== nbdev_test (every notebook, quick mode)"
start=$SECONDS
nbdev_test --n_workers 2 --timing
echo "nbdev_test took $((SECONDS - start)) s"
echo "== pytest"
python -m pytest tests -q -p no:cacheprovider
