#!/usr/bin/env bash
# Set up a fresh Debian machine for cnn_course: system packages, a virtual environment in .venv,
# PyTorch, and this package with its dev extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# dataset-fashion-mnist: the real Fashion-MNIST, so training and tests work offline.
# graphviz: draws the torchviz graphs in lesson 2.
# chromium, chromium-driver: the test that runs lesson 3 in JupyterLab in a headless browser (Selenium drives it).
# pandoc: renders the docs pages' markdown outputs as Quarto (built on pandoc) does, for the page check.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist graphviz python3-venv \
  chromium chromium-driver pandoc >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The package itself asks for any torch; the dev/CI install pins the build we test with.
.venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q -e ".[dev]"
echo "cnn_course is set up in .venv"
