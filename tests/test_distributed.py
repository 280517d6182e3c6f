"""`fit` under `torchrun`: two real gloo processes on the CPU (tests/ddp_train.py), against one process; a rank
killed with SIGKILL ends the job, and the checkpoints it leaves let `resume` continue."""
import os, signal, socket, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tests' / 'ddp_train.py'
TIME_LIMIT = 240  # seconds any one launch may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env_one_thread():
    "Two processes on two cores: one thread each (processes x threads <= cores); the one-process run the same."
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'CNN_COURSE_QUICK')}
    env.update(OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p]))
    return env


def launch(out, *args, nproc=2, wait=True):
    "torchrun --nproc-per-node N (or one plain process for nproc=None) running ddp_train.py; its own process group."
    runner = ([sys.executable, '-m', 'torch.distributed.run', f'--nproc-per-node={nproc}', '--master-addr=127.0.0.1',
               f'--master-port={free_port()}'] if nproc else [sys.executable])
    cmd = [*runner, str(SCRIPT), '--out', str(out), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=out.parent, env=env_one_thread(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    if not wait: return proc
    try: output, _ = proc.communicate(timeout=TIME_LIMIT)
    finally: stop(proc)
    return proc.returncode, output


def stop(proc):
    "Whatever is left of a launch and its children: gone."
    if proc.poll() is None:
        try: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        proc.wait(timeout=30)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp('data')


def ranks(out, n):
    return [torch.load(out / f'rank{r}.pt', weights_only=False) for r in range(n)]


def test_two_processes_train_as_one(tmp_path, data_root):
    "Same global batch and seed, a model without batch-norm or dropout: the 2-process history is the 1-process one."
    rc, output = launch(tmp_path / 'two', '--data-root', data_root)
    assert rc == 0, output
    assert output.count('Epoch [2/2]') == 1, output          # rank 0 alone prints
    assert sorted(p.name for p in (tmp_path / 'two').glob('history*')) == ['history.npy']
    r0, r1 = ranks(tmp_path / 'two', 2)
    assert r0['world_size'] == r1['world_size'] == 2
    assert r0['n_val'] == r1['n_val'] == r0['n_val_set'] == 200   # each validation image counted once, in all
    assert all(torch.equal(r0['state'][k], r1['state'][k]) for k in r0['state'])   # the replicas stayed identical
    assert np.array_equal(r0['history'], r1['history']) and np.array_equal(np.load(tmp_path / 'two' / 'history.npy'), r0['history'])
    rc, output = launch(tmp_path / 'one', '--data-root', data_root, nproc=None)
    assert rc == 0, output
    one = ranks(tmp_path / 'one', 1)[0]
    assert one['world_size'] == 1 and one['n_val'] == 200
    two, single = r0['history'], one['history']
    # The stated tolerance: losses within a relative 1e-5, accuracies within one image (measured: 2e-7 and equal);
    # the only differences are the order in which floats are added (a 2-way all-reduce against one sum).
    assert np.array_equal(two[:, 0], single[:, 0])
    assert np.allclose(two[:, [1, 3]], single[:, [1, 3]], rtol=1e-5, atol=0)
    assert np.all(np.abs(two[:, 2] - single[:, 2]) <= 1 / 800 + 1e-12) and np.all(np.abs(two[:, 4] - single[:, 4]) <= 1 / 200 + 1e-12)
    assert max((r0['state'][k] - one['state'][k]).abs().max().item() for k in r0['state']) < 1e-4
    assert two[-1, 4] > 0.35   # it learns: real Fashion-MNIST, chance is 0.1


def test_a_killed_rank_ends_the_job_and_resume_continues(tmp_path, data_root):
    "SIGKILL one rank mid-epoch: torchrun ends the job non-zero naming it; last.pt loads; resume (2 processes) finishes."
    from cnn_course.checkpoint import read_checkpoint
    out, ck = tmp_path / 'run', tmp_path / 'ck'
    proc = launch(out, '--data-root', data_root, '--epochs', 4, '--checkpoint', ck, '--pause', 0.05, wait=False)
    try:
        deadline = time.monotonic() + TIME_LIMIT
        while not ((ck / 'last.pt').exists() and (out / 'pid1').exists()):  # the first epoch is checkpointed
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.2)
        time.sleep(0.5)  # into the next epoch
        os.kill(int((out / 'pid1').read_text()), signal.SIGKILL)
        killed = time.monotonic()
        output, _ = proc.communicate(timeout=120)
        ended_after = time.monotonic() - killed
    finally: stop(proc)
    assert proc.returncode != 0, output
    assert ended_after < 60, ended_after   # torchrun stops the survivor at once; the collectives' timeout is 30 s here
    assert 'local_rank: 1' in output and 'SIGKILL' in output, output[-3000:]   # the lost rank is named
    epoch = read_checkpoint(ck / 'last.pt')['epoch']
    assert 1 <= epoch < 4
    rc, output = launch(out, '--data-root', data_root, '--epochs', 4, '--checkpoint', ck, '--resume')
    assert rc == 0, output
    assert f'resumed from epoch {epoch} of 4' in output and output.count('resumed from') == 1
    history = np.load(out / 'history.npy')
    assert history.shape == (4, 5) and list(history[:, 0]) == [1, 2, 3, 4] and np.isfinite(history).all()
    assert read_checkpoint(ck / 'last.pt')['epoch'] == 4
