#!/usr/bin/env bash
# Run every check CI runs: the library matches the notebooks, the notebooks are clean, README.md,
# the API pages and the docs config are up to date, nbdev's docs pre-render step passes (offline),
# every notebook runs (quick mode), and the pytest suite passes.
set -euo pipefail
cd "$(dirname "$0")/.."
# tools/setup.sh (and so CI) installs into .venv; without one, the python on PATH is used
# (e.g. `PATH=/path/to/venv/bin:$PATH bash tools/test.sh`).
if [ -x .venv/bin/python ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
echo "using $(command -v python)"
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
echo "== docs: README.md from nbs/index.ipynb, API pages, nbdev's pre-render step, cross-references"
start=$SECONDS
python tools/make_readme.py --check
python tools/make_api_nb.py --check
python tools/docs_check.py
generated="nbs/nbdev.yml nbs/sidebar.yml nbs/_quarto.yml cnn_course/_modidx.py"
if [ -n "$(git status --porcelain -- $generated)" ]; then
  git status --porcelain -- $generated
  echo "the docs configuration is out of date: tools/docs_check.py regenerated it; commit the result"; exit 1
fi
echo "docs checks took $((SECONDS - start)) s"
echo "== nbdev_test (every notebook, quick mode)"
start=$SECONDS
# two workers on two cores: one thread each (two workers with two threads each slow each other down several times
# over; measured here: 101 s with the default threads, 37 s with one)
log=$(mktemp)  # this run's own copy of what the notebooks printed (two runs at once never share it)
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nbdev_test --n_workers 2 --timing 2>&1 | tee "$log"
# a line a student would read as a failure (PyTorch's own C++ log, e.g. the profiler's probe for a GPU) fails the run
if grep -E '^(ERROR|USDT):|gpuGetDeviceCount' "$log"; then
  echo "a notebook printed the log line(s) above: silence it where it is made"; rm -f "$log"; exit 1
fi
rm -f "$log"
echo "nbdev_test took $((SECONDS - start)) s"
echo "== pytest"
# two workers (pytest-xdist) on two cores, one thread each: most tests wait on process start-up (importing PyTorch
# takes seconds) and small single-threaded runs, which two workers overlap; the processes the tests start inherit
# the one thread (measured on a 2-core AVX-512 machine: 436 s in one worker, 241 s in two)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python -m pytest tests -q -p no:cacheprovider -n 2 --durations=10
