"""Faults a student meets: real kills at chosen moments, full disks (a small tmpfs), damaged files and
mistyped paths."""
import contextlib, gzip, os, shutil, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_course.checkpoint import DamagedCheckpointError, read_checkpoint
from cnn_course.data import DamagedDataError, load_dataset, write_synthetic_idx
from conftest import cli_here

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')


def env(**extra):
    """A fresh process's environment: this checkout on the path, one thread (two processes may share the two
    cores)."""
    e = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'CNN_COURSE_QUICK')}
    e.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', MPLBACKEND='Agg', **extra)
    return e


def cli(*args, cwd, quick=True, timeout=300):
    return subprocess.run([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd,
                          capture_output=True,
                          text=True, timeout=timeout, env=env(**({'CNN_COURSE_QUICK': '1'} if quick else {})))


def one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert (r.stderr.startswith('cnn-course: error: ') and r.stderr.count('\n') == 1 and
            'Traceback' not in r.stderr), r.stderr
    for f in fragments: assert f in r.stderr, (f, r.stderr)


@contextlib.contextmanager
def small_disk(path, size):
    "A tmpfs of `size` mounted at `path` (root only; the test is skipped where mounting is not allowed)."
    path.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f'cannot mount a tmpfs here ({r.stderr.strip()}): needs root')
    try: yield path
    finally: subprocess.run(['umount', '-l', str(path)], capture_output=True)


def fill(folder):
    "Write zeros into `folder` until its disk is full."
    with contextlib.suppress(OSError), open(folder / 'filler', 'wb', buffering=0) as f:
        while True: f.write(bytes(1 << 16))


KILL_AFTER_WRITE = textwrap.dedent('''
    # Train through the command, but SIGKILL this process right after its Nth checkpoint write: a real kill
    # at an exact moment, the one between the two files of an improving epoch.
    import os, signal, sys
    import cnn_course.checkpoint as checkpoint
    from cnn_course.cli import main
    kill_after, writes, real_write = int(sys.argv[1]), [], checkpoint.atomic_write
    def write_then_maybe_die(path, write_fn, mode='wb'):
        out = real_write(path, write_fn, mode)
        writes.append(path.name)
        if len(writes) == kill_after: os.kill(os.getpid(), signal.SIGKILL)
        return out
    checkpoint.atomic_write = write_then_maybe_die
    raise SystemExit(main(sys.argv[2:]))
''')


def test_a_kill_between_the_two_checkpoint_writes_is_repaired_by_resume(tmp_path):
    "Epoch 1 writes 2 files; a kill after the 3rd write falls between the two files of the improving epoch 2."
    ck = tmp_path / 'ck'
    (tmp_path / 'kill.py').write_text(KILL_AFTER_WRITE)
    args = ['train', '--dataset', 'mnist', '--model', 'mnist_cnn', '--optimizer', 'sgd', '--lr', '0.05',
            '--epochs', '2',
            '--limit-train', '600', '--limit-test', '200', '--no-progress', '--checkpoint', str(ck), '--out',
            str(tmp_path / 'out'), '--data-root', str(tmp_path / 'data')]
    # TMPDIR: killed, the process runs no exit handlers; its synthetic data stays in the test's folder, not
    # /tmp
    r = subprocess.run([sys.executable, str(tmp_path / 'kill.py'), '3', *args], cwd=tmp_path,
                       capture_output=True,
                       text=True, timeout=300, env=env(CNN_COURSE_QUICK='1', TMPDIR=str(tmp_path)))
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    last, best = read_checkpoint(ck / 'last.pt'), read_checkpoint(ck / 'best.pt')
    # best.pt is written first: the newer file is best.pt, and last.pt is one epoch behind
    assert (last['epoch'], best['epoch']) == (1, 2), (last['epoch'], best['epoch'])
    ev = cli_here('evaluate', ck, cwd=tmp_path)
    assert (ev.returncode == 0 and
            'note: last.pt (epoch 1) is behind best.pt (epoch 2)' in ev.stdout), ev.stdout + ev.stderr
    r = cli_here('resume', ck, '--no-progress', cwd=tmp_path)
    assert (r.returncode == 0 and 'resumed from epoch 1 of 2' in r.stdout and
            'Epoch [2/2]' in r.stdout), r.stdout + r.stderr
    last, best = read_checkpoint(ck / 'last.pt'), read_checkpoint(ck / 'best.pt')
    best_epoch = int(last['history'][:, 3].argmin()) + 1
    assert last['epoch'] == 2 and best['epoch'] == best_epoch == 2
    assert np.array_equal(best['history'], last['history'][:best_epoch])
    # the same epoch 2
    assert all(torch.equal(best['model_state'][k], v) for k, v in last['model_state'].items())
    assert not list(ck.glob('.*.tmp'))


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / 'train-images-idx3-ubyte.gz').exists(),
                    reason='needs Debian\'s dataset-fashion-mnist (real files worth killing a decompression '
                           'for)')
def test_a_decompression_killed_halfway_leaves_nothing_behind(tmp_path):
    root = tmp_path / 'data'
    raw = root / 'FashionMNIST' / 'raw'
    code = (f'from cnn_course.data import load_dataset; load_dataset("fashion-mnist", root={str(root)!r}, '
            'download=False)')
    proc = subprocess.Popen([sys.executable, '-c', code], env=env(), cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not list(raw.glob('.train-images-idx3-ubyte.*.tmp')): time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = list(raw.glob('.*.tmp'))
    assert left, 'the process was not killed mid-write (it finished or never started decompressing)'
    # whoever comes next cleans up and finishes
    load_dataset('fashion-mnist', root=root, download=False, limit=10)
    assert not list(raw.glob('.*.tmp')) and (raw / 'train-images-idx3-ubyte').stat().st_size == 47_040_016


def test_a_truncated_download_is_named_with_the_remedy(tmp_path):
    raw = tmp_path / 'data' / 'MNIST' / 'raw'
    write_synthetic_idx(tmp_path / 'data', 'MNIST', 200, 100)
    # only the .gz copies a download leaves, one cut short
    for f in [f for f in raw.iterdir() if f.suffix != '.gz']:
        data = gzip.compress(f.read_bytes())
        (raw / f'{f.name}.gz').write_bytes(data[:len(data) // 2] if f.name == 'train-images-idx3-ubyte'
                                           else data)
        f.unlink()
    with pytest.raises(DamagedDataError, match=r'train-images-idx3-ubyte\.gz is damaged .*Delete it and '
                                               r'fetch it again'):
        load_dataset('mnist', root=tmp_path / 'data', download=False)
    r = cli_here('train', '--dataset', 'mnist', '--data-root', tmp_path / 'data', '--no-download', '--out',
                 tmp_path / 'o', cwd=tmp_path, quick=False)
    one_line_error(r, '--dataset mnist: ', 'train-images-idx3-ubyte.gz is damaged',
                   'Delete it and fetch it again')
    assert not list(raw.glob('.*.tmp'))


def test_a_disk_too_small_for_the_results_is_refused_before_training(tmp_path):
    with small_disk(tmp_path / 'small', '512k') as small:
        r = cli_here('train', '--model', 'mnist_cnn', '--out', small / 'run', '--data-root',
                     tmp_path / 'data', cwd=tmp_path)
        one_line_error(r, 'not enough disk space', f'--out {small / "run"}: model.pt',
                       'choose a folder on another disk')
        assert 'Epoch [' not in r.stdout and not (small / 'run').exists()


def _run_until_first_epoch_then_fill(args, small, cwd, wait_for=None):
    """Start `cnn-course train ARGS`, fill `small` once epoch 1 is reported (and `wait_for` exists), return
    the output."""
    proc = subprocess.Popen([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd,
                            env=env(CNN_COURSE_QUICK='1'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('Epoch [1/'):
                deadline = time.time() + 60  # the line is printed before the epoch's checkpoint is written
                while wait_for is not None and not wait_for.exists() and time.time() < deadline:
                    time.sleep(0.01)
                fill(small)
                break
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None: proc.kill()
    return proc.returncode, ''.join(lines) + out, err


def test_a_full_out_disk_keeps_the_trained_weights(tmp_path):
    """The disk of --out fills during training: one line, exit 2, and the weights saved elsewhere, usable by
    predict."""
    from PIL import Image
    with small_disk(tmp_path / 'small', '4m') as small:
        args = ['train', '--model', 'mnist_cnn', '--epochs', '2', '--limit-train', '1200', '--limit-test',
                '200', '--no-progress', '--out', small / 'run', '--data-root', tmp_path / 'data']
        status, out, err = _run_until_first_epoch_then_fill(args, small, tmp_path)
        assert status == 2 and err.count('\n') == 1 and 'Traceback' not in err, err
        assert (err.startswith(f'cnn-course: error: cannot write {small / "run"}/') and
                'no space left on the device' in err)
        assert not list((small / 'run').glob('.*.tmp')) and not (small / 'run' / 'run.json').exists()
    rescue = Path(err.split('The trained weights were saved to ')[1].split(' instead')[0])
    try:
        assert sorted(p.name for p in rescue.iterdir()) == ['model.pt', 'run.json']
        Image.new('L', (28, 28), 0).save(tmp_path / 'black.png')
        r = cli_here('predict', rescue, tmp_path / 'black.png', cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith(f'{tmp_path / "black.png"}: '), r.stderr
    finally: shutil.rmtree(rescue, ignore_errors=True)


def test_a_full_checkpoint_disk_stops_with_the_last_epoch_intact(tmp_path):
    with small_disk(tmp_path / 'small', '8m') as small:
        ck = small / 'ck'
        args = ['train', '--model', 'mnist_cnn', '--epochs', '3', '--limit-train', '1200', '--limit-test',
                '200', '--no-progress', '--checkpoint', ck, '--out', tmp_path / 'out', '--data-root',
                tmp_path / 'data']
        status, out, err = _run_until_first_epoch_then_fill(args, small, tmp_path, wait_for=ck / 'last.pt')
        assert status == 2 and err.count('\n') == 1 and 'Traceback' not in err, err
        assert 'no space left on the device' in err and f'`cnn-course resume {ck}` continues from them' in err
        assert read_checkpoint(ck / 'last.pt')['epoch'] == 1 and not list(ck.glob('.*.tmp'))
        (small / 'filler').unlink()  # the student frees space
        r = cli_here('resume', ck, '--no-progress', cwd=tmp_path)
        assert r.returncode == 0 and 'resumed from epoch 1 of 3' in r.stdout, r.stderr
        assert read_checkpoint(ck / 'last.pt')['epoch'] == 3


def test_paths_that_are_files_and_crafted_checkpoints_get_one_line(tmp_path):
    (tmp_path / 'a-file').write_text('not a folder')
    one_line_error(cli('train', '--checkpoint', tmp_path / 'a-file', '--out', tmp_path / 'o', cwd=tmp_path),
                   f'--checkpoint {tmp_path / "a-file"}: cannot create this folder: a file of that name is '
                   'there')
    one_line_error(cli('train', '--data-root', tmp_path / 'a-file', '--out', tmp_path / 'o', cwd=tmp_path),
                   f'--data-root {tmp_path / "a-file"} is a file, not a folder')
    crafted = tmp_path / 'crafted'
    crafted.mkdir()
    torch.save({'format': 'cnn_course.checkpoint'}, crafted / 'last.pt')
    with pytest.raises(DamagedCheckpointError, match='lacks model, model_state'):
        read_checkpoint(crafted / 'last.pt')
    for command in ('resume', 'evaluate'):
        one_line_error(cli_here(command, crafted, cwd=tmp_path), f'{command} {crafted}: ',
                       'says it is a cnn_course checkpoint but lacks')


OUT_OF_MEMORY = textwrap.dedent("""
    # A real allocation failure: cap this process's address space a little above what it uses once PyTorch
    # is loaded, then ask for batches whose first convolution alone needs about 2 GB.
    import resource, sys
    import torch, cnn_course.runs
    from cnn_course.cli import main
    used = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (used + 1_200_000_000, resource.RLIM_INFINITY))
    raise SystemExit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(not Path('/proc/self/status').exists(),
                    reason='needs Linux /proc to size the memory limit')
def test_running_out_of_memory_is_one_line(tmp_path):
    (tmp_path / 'oom.py').write_text(OUT_OF_MEMORY)
    args = ['train', '--epochs', '1', '--limit-train', '24000', '--limit-test', '100', '--batch-size',
            '20000', '--no-progress', '--out', str(tmp_path / 'out'), '--data-root', str(tmp_path / 'data')]
    r = subprocess.run([sys.executable, str(tmp_path / 'oom.py'), *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=env(CNN_COURSE_QUICK='1'))
    one_line_error(r, 'out of memory (', 'use a smaller --batch-size')
    r = subprocess.run([sys.executable, str(tmp_path / 'oom.py'), *args, '--debug'], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env(CNN_COURSE_QUICK='1'))
    assert r.returncode == 1 and 'Traceback' in r.stderr  # --debug: the whole story, for whoever fixes it
