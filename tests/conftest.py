import os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Plots are written, never shown, under pytest.
os.environ.setdefault('MPLBACKEND', 'Agg')


def quick_cli(*args, cwd, timeout=300):
    "`python -m cnn_course.cli ARGS` in a fresh process, in quick mode (small data): the tests of `predict` use it."
    import subprocess
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CNN_COURSE_QUICK': '1'}
    env.pop('IN_TEST', None)
    return subprocess.run([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
