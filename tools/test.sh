#!/usr/bin/env bash
# Run every check CI runs: the library matches the notebooks, the notebooks are clean, README.md,
# the API pages and the docs config are up to date, nbdev's docs pre-render step passes (offline),
# every notebook runs in a real Jupyter kernel (quick mode; the API pages in the docs step), and the pytest suite passes (it includes lesson 3 run
# with Run All in JupyterLab in a headless browser, and every docs page, rendered from the _proc/ the docs step
# just wrote, checked in that browser).
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
# Compile the package, the tests and the tools once: with PYTHONDONTWRITEBYTECODE=1 (set on these machines) every process
# and kernel the suite starts would compile them again (about 0.2 s each, measured on 2 cores)
python -m compileall -q cnn_course tests tools
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
echo "== every notebook in a real Jupyter kernel (quick mode), as Jupyter and Colab run them"
start=$SECONDS
# A kernel has a display, so live plots and display updates run, which nbdev_test (no front end) never reaches.
# Two notebooks at once, one thread per kernel (two kernels with two threads each slow each other down several
# times over). Fails on an error, on error text in an output and on a printed warning.
# Lesson 3 is left to pytest, which runs it with Run All in JupyterLab in a browser (tests/test_jupyterlab.py) and fails
# it on the same faults (run_notebooks.FAULT, the kernel's stderr included): here it would run a second time.
# The API pages (nbs/api/: imports and show_doc cells only) are left to the docs step above, which executes every one of
# their cells and fails on an error (tests/test_run_notebooks.py checks both).
python tools/run_notebooks.py --workers 2 --except nbs/03_bn_dropout.ipynb --except-docs-only
echo "notebooks took $((SECONDS - start)) s"
echo "== pytest"
# two workers (pytest-xdist) on two cores, one thread each: most tests wait on process start-up (importing PyTorch
# takes seconds) and small single-threaded runs, which two workers overlap; the processes the tests start inherit
# the one thread (measured on a 2-core AVX-512 machine: 436 s in one worker, 241 s in two)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# lesson 3 in JupyterLab and the rendered pages in headless Chromium (tests/test_jupyterlab.py, tests/test_pages.py):
# here a missing browser fails the run
export CNN_COURSE_BROWSER_TEST=required
# One test at a time to each worker as it becomes free (--maxschedchunk 1; by default xdist hands each worker a run of
# consecutive tests), the long ones first (tests/conftest.py): both workers end together. Measured on the 2-core
# AVX512-BF16 machine: 277 s, against 300 s in file order and 360-368 s with the long tests first but handed out in
# runs (one worker got all of them)
python -m pytest tests -q -p no:cacheprovider -n 2 --maxschedchunk 1 --durations=10
