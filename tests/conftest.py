import os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Plots are written, never shown, under pytest.
os.environ.setdefault('MPLBACKEND', 'Agg')
