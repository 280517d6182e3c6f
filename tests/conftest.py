import os, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Plots are written, never shown, under pytest.
os.environ.setdefault('MPLBACKEND', 'Agg')


def pytest_configure(config):
    config.addinivalue_line('markers',
                            'long: takes 10 s or more on 2 cores (processes, a browser); run first')


def pytest_collection_modifyitems(config, items):
    """The long tests first, in their files' order. With `--maxschedchunk 1` (tools/test.sh) pytest-xdist
    hands each worker the next test as it becomes free, so the long ones are shared out first and both
    workers end together on
    short ones (before, the last test could run alone on one worker for 13-17 s, the other one idle)."""
    items.sort(key=lambda item: item.get_closest_marker('long') is None)


def quick_cli(*args, cwd, timeout=300):
    """`python -m cnn_course.cli ARGS` in a fresh process, in quick mode (small data): the tests of `predict`
    use it."""
    import subprocess
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CNN_COURSE_QUICK': '1'}
    env.pop('IN_TEST', None)
    return subprocess.run([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_here(*args, cwd, quick=True):
    """`cnn_course.cli.main(ARGS)` in this process, with what it prints captured as a process's would be.

    For every test whose subject is not the process itself (one-line errors, what a run or a resume writes,
    what follows a run folder): a fresh process pays 3 s of PyTorch and torchvision start-up per call
    (measured on 2 cores: most of the quick runs' time), and the code under test is the same `main` the
    `cnn-course` script calls. The tests that need a real process (the entry point, a kill, memory, imports,
    output to a pipe) start one. What a run sets for the whole process (deterministic mode, the allocator
    setting of `fit` on the CPU) then stays in the pytest worker,
    as after any test that trains."""
    import contextlib, io, subprocess, warnings
    from cnn_course.cli import main
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.pop('IN_TEST', None)
    if quick: os.environ['CNN_COURSE_QUICK'] = '1'
    else: os.environ.pop('CNN_COURSE_QUICK', None)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        # every warning is shown, as in a fresh process (none is hidden by one this process already showed)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter('default')
            status = main([str(a) for a in args])
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(['cnn-course', *map(str, args)], status, out.getvalue(),
                                       err.getvalue())


@pytest.fixture(scope='session')
def trained_runs(tmp_path_factory):
    """Quick runs of `cnn-course train` that the predict and explain tests read: the flat net (`fc`, 1 epoch,
    300 images) and lesson 3's CNN (`fashion_cnn`, 1 epoch, 600 images), each with --checkpoint NAME and
    --out NAME-out. Trained once per pytest worker, in the worker's own process (`cli_here`: the tests are
    about what reads these folders, and a fresh process would add seconds of start-up to each); a test copies
    them with `copy_runs` before
    writing into them."""
    root = tmp_path_factory.mktemp('runs')
    for model, name, n in (('fc', 'fc', 300), ('fashion_cnn', 'cnn', 600)):
        r = cli_here('train', '--model', model, '--epochs', 1, '--limit-train', n, '--limit-test', n // 3,
                     '--no-progress', '--data-root', root / 'data', '--checkpoint', root / name, '--out',
                     root / f'{name}-out', cwd=root)
        assert r.returncode == 0, r.stderr
    return root


def copy_runs(trained_runs, to):
    """The run folders of `trained_runs` (fc, fc-out, cnn, cnn-out) copied into `to`, for a test that writes
    into them."""
    import shutil
    for name in ('fc', 'fc-out', 'cnn', 'cnn-out'): shutil.copytree(trained_runs / name, to / name)
    return to
