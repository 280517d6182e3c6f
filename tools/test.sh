#!/usr/bin/env bash
# Every check CI runs: the library and the notebooks agree, the notebooks are clean, the docs sources are current,
# every notebook runs in a real Jupyter kernel, and the pytest suite passes. Its time: nbs/performance.ipynb.
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
# Compile once: with PYTHONDONTWRITEBYTECODE=1 every process the suite starts would compile them again
python -m compileall -q cnn_course tests tools
echo "== ruff: no unused or undefined names, no line over 110 characters (pyproject.toml)"
ruff check cnn_course nbs tools bench tests
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
# A real kernel, not nbdev_test: it has a display, so live plots and display updates run too.
# Two notebooks at once, one thread each: two kernels with two threads each on two cores slow each other down.
# Lesson 3 runs once, in pytest's JupyterLab test; the API pages run once, in the docs step above.
python tools/run_notebooks.py --workers 2 --except nbs/03_bn_dropout.ipynb --except-docs-only
echo "notebooks took $((SECONDS - start)) s"
echo "== pytest"
# Two workers with one thread each: most tests wait on process start-up, which two workers overlap
# (nbs/performance.ipynb, "The test suite"); the processes the tests start inherit the one thread.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# lesson 3 in JupyterLab and the rendered pages in headless Chromium (tests/test_jupyterlab.py, tests/test_pages.py):
# here a missing browser fails the run
export CNN_COURSE_BROWSER_TEST=required
# One test at a time to each free worker, the long ones first (tests/conftest.py), so both workers end together.
python -m pytest tests -q -p no:cacheprovider -n 2 --maxschedchunk 1 --durations=10
