"""`fit` under `torchrun`: two real gloo processes on the CPU (tests/ddp_train.py), against one process; a
rank
killed with SIGKILL ends the job, and the checkpoints it leaves let `resume` continue."""
import os, re, signal, socket, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import cli_here

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tests' / 'ddp_train.py'
TIME_LIMIT = 240  # seconds any one launch may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env_one_thread():
    """Two processes on two cores: one thread each (processes x threads <= cores); the one-process run the
    same."""
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'CNN_COURSE_QUICK')}
    env.update(OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p]))
    return env


def launch(out, *args, nproc=2, wait=True):
    """torchrun --nproc-per-node N (or one plain process for nproc=None) running ddp_train.py; its own process
    group."""
    runner = ([sys.executable, '-m', 'torch.distributed.run', f'--nproc-per-node={nproc}',
               '--master-addr=127.0.0.1', f'--master-port={free_port()}'] if nproc else [sys.executable])
    cmd = [*runner, str(SCRIPT), '--out', str(out), *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=out.parent, env=env_one_thread(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
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


@pytest.mark.long
def test_two_processes_train_as_one_process_doing_their_arithmetic(tmp_path, data_root):
    """Two processes, same global batch and seed, a model without batch-norm or dropout, against one process
    that computes every batch in the two parts the two processes compute (ddp_train.py --split 2): the same
    arithmetic (DistributedDataParallel averages the parts' gradients; halving and a sum of two are exact in
    floating point), so
    the weights after 2 epochs (32 steps) agree to float32 rounding on any CPU, and the history too."""
    rc, output = launch(tmp_path / 'two', '--data-root', data_root)
    assert rc == 0, output
    assert output.count('Epoch [2/2]') == 1, output          # rank 0 alone prints
    assert sorted(p.name for p in (tmp_path / 'two').glob('history*')) == ['history.npy']
    r0, r1 = ranks(tmp_path / 'two', 2)
    assert r0['world_size'] == r1['world_size'] == 2
    assert r0['n_val'] == r1['n_val'] == r0['n_val_set'] == 200   # each validation image counted once, in all
    # the replicas stayed identical
    assert all(torch.equal(r0['state'][k], r1['state'][k]) for k in r0['state'])
    assert (np.array_equal(r0['history'], r1['history']) and
            np.array_equal(np.load(tmp_path / 'two' / 'history.npy'), r0['history']))
    # both left the process group before the interpreter shut down (a process that doesn't can die with
    # SIGABRT
    # after its work is done, and torchrun then fails the run)
    assert [(tmp_path / 'two' / f'left{r}').read_text() for r in (0, 1)] == ['True', 'True']
    rc, output = launch(tmp_path / 'split', '--data-root', data_root, '--split', 2, nproc=None)
    assert rc == 0, output
    split = ranks(tmp_path / 'split', 1)[0]
    assert split['world_size'] == 1 and split['n_val'] == 200
    # Weights: the same operations on the same numbers; 1e-6 leaves room only for rounding (measured:
    # bit-equal, on
    # a CPU with AVX-512 and with PyTorch held to AVX2).
    for k in split['state']: assert torch.allclose(r0['state'][k], split['state'][k], rtol=1e-6, atol=1e-7), k
    two, one = r0['history'], split['history']
    assert np.array_equal(two[:, [0, 2, 4]], one[:, [0, 2, 4]])   # epochs, and the same images right
    # The losses are sums over the epoch's 16 batches (validation: 4 parts) added in another order: float32's
    # rounding of a 16-term sum is below 16 x 2^-24 = 1e-6 of it (measured: 6e-8).
    assert np.allclose(two[:, [1, 3]], one[:, [1, 3]], rtol=2e-6, atol=0)
    assert two[-1, 4] > 0.35   # it learns: real Fashion-MNIST, chance is 0.1


@pytest.mark.long
def test_one_step_in_two_processes_is_the_one_process_step(tmp_path, data_root):
    """One SGD step on a batch of 50 (50 training images, one epoch): in two processes (25 images each,
    gradients averaged) and in one process. Each weight's gradient is a float32 sum over the batch (for a
    convolution, over up to 50 x 26 x 26 = 33,800 products); adding in another order moves it by about
    sqrt(n) x 2^-24 of its scale
    (1e-5) and by at most n x 2^-24 (2e-3); an averaging mistake would move it by half of itself or more."""
    # 62 images: 50 to train on, 12 to validate
    small = ('--data-root', data_root, '--n-train', 62, '--epochs', 1)
    rc, output = launch(tmp_path / 'two', *small)
    assert rc == 0, output
    rc, output = launch(tmp_path / 'one', *small, nproc=None)
    assert rc == 0, output
    two, one = ranks(tmp_path / 'two', 1)[0], ranks(tmp_path / 'one', 1)[0]
    assert all(torch.equal(two['init'][k], one['init'][k]) for k in one['init'])   # the same start
    for k, w in one['state'].items():
        step = (w - one['init'][k]).abs().max().item()
        # measured: 9e-5 of the step at most
        assert step > 0 and (two['state'][k] - w).abs().max().item() <= 2e-3 * step, k
    assert np.array_equal(two['history'][:, [0, 2, 4]], one['history'][:, [0, 2, 4]])
    # measured: 1e-7
    assert np.allclose(two['history'][:, [1, 3]], one['history'][:, [1, 3]], rtol=1e-5, atol=0)


@pytest.mark.long
def test_a_killed_rank_ends_the_job_and_resume_continues(tmp_path, data_root):
    """SIGKILL one rank mid-epoch: torchrun ends the job non-zero naming it; last.pt loads; resume (2
    processes) finishes."""
    from cnn_course.checkpoint import read_checkpoint
    out, ck = tmp_path / 'run', tmp_path / 'ck'
    proc = launch(out, '--data-root', data_root, '--epochs', 4, '--checkpoint', ck, '--pause', 0.05,
                  wait=False)
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
    # torchrun stops the survivor at once; the collectives' timeout is 30 s here
    assert ended_after < 60, ended_after
    assert 'local_rank: 1' in output and 'SIGKILL' in output, output[-3000:]   # the lost rank is named
    epoch = read_checkpoint(ck / 'last.pt')['epoch']
    assert 1 <= epoch < 4
    rc, output = launch(out, '--data-root', data_root, '--epochs', 4, '--checkpoint', ck, '--resume')
    assert rc == 0, output
    assert f'resumed from epoch {epoch} of 4' in output and output.count('resumed from') == 1
    history = np.load(out / 'history.npy')
    assert history.shape == (4, 5) and list(history[:, 0]) == [1, 2, 3, 4] and np.isfinite(history).all()
    assert read_checkpoint(ck / 'last.pt')['epoch'] == 4


def cli(*args, cwd, timeout=TIME_LIMIT, runner=('-m', 'cnn_course.cli')):
    "`python -m cnn_course.cli ARGS` (or another runner) in a fresh process group, one thread per process."
    proc = subprocess.Popen([sys.executable, *runner, *map(str, args)], cwd=cwd, env=env_one_thread(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try: out, err = proc.communicate(timeout=timeout)
    finally: stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.long
def test_the_command_in_two_processes_then_resumed_in_one_and_in_two(tmp_path, data_root):
    """--nproc-per-node 2: rank 0 writes run.json with world_size, backend and batches; resume works with 1 or
    2 processes."""
    import json
    small = ('--limit-train', 1200, '--limit-test', 300, '--data-root', data_root, '--no-progress')
    r = cli('train', '--nproc-per-node', 2, '--epochs', 2, '--checkpoint', tmp_path / 'ck', '--out',
            tmp_path / 'out', *small, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ('each trains on 50 of the 100 images of every step' in r.stdout and
            r.stdout.count('Epoch [2/2]') == 1)
    run = json.loads((tmp_path / 'out' / 'run.json').read_text())
    assert ((run['world_size'], run['backend'], run['batch_size_global'], run['batch_size_per_process'])
            == (2, 'gloo', 100, 50))
    history = np.load(tmp_path / 'out' / 'history.npy')
    kept = run['weights_epoch'] - 1
    # the history's validation and run.json's (one process scoring the kept weights again) agree: every
    # process
    # validated the same model, batch-norm statistics included, and counted each of the 200 images once
    assert (run['n_val'] == 200 and np.isclose(run['val_loss'], history[kept, 3], rtol=1e-6) and
            run['val_accuracy'] == history[kept, 4])
    # now in one process: this one (PyTorch is imported here already; the same `main` the script runs)
    r = cli_here('resume', tmp_path / 'ck', '--epochs', 3, '--out', tmp_path / 'one', cwd=tmp_path,
                 quick=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / 'one' / 'run.json').read_text())['world_size'] == 1
    assert np.load(tmp_path / 'one' / 'history.npy').shape == (3, 5)
    # the batch is the run's: 3 processes cannot share 100 images, which resume says before starting any of
    # them
    r = cli_here('resume', tmp_path / 'ck', '--epochs', 4, '--nproc-per-node', 3, '--out', tmp_path / 'three',
                 cwd=tmp_path, quick=False)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'starting' not in r.stdout, r.stderr[-3000:]
    assert ("the run's global batch of 100 images is split evenly over the processes, and 3 cannot share it"
            in r.stderr)
    assert not (tmp_path / 'three').exists()
    # and in two again, started as a user starts torchrun (the command's --nproc-per-node runs this same line)
    r = cli('--standalone', '--nproc-per-node=2', '-m', 'cnn_course.cli', 'resume', tmp_path / 'ck',
            '--epochs', 4, '--out', tmp_path / 'two', cwd=tmp_path, runner=('-m', 'torch.distributed.run'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('resumed from epoch 3 of 4') == 1
    assert json.loads((tmp_path / 'two' / 'run.json').read_text())['world_size'] == 2
    assert np.array_equal(np.load(tmp_path / 'two' / 'history.npy')[:3],
                          np.load(tmp_path / 'one' / 'history.npy'))


def test_launch_errors_are_one_line_before_any_process_starts(tmp_path):
    def error(*args):
        # the same `main`, here
        r = cli_here('train', *args, '--out', tmp_path / 'never', cwd=tmp_path, quick=False)
        assert (r.returncode == 2 and r.stderr.count('\n') == 1 and
                r.stderr.startswith('cnn-course: error: ')), r.stderr
        assert 'Epoch' not in r.stdout and 'starting' not in r.stdout
        return r.stderr
    with socket.socket() as taken:
        taken.bind(('', 0)); taken.listen()
        port = taken.getsockname()[1]
        assert (f'port {port} is already in use on this machine'
                in error('--nproc-per-node', 2, '--rdzv-endpoint', f'127.0.0.1:{port}'))
    assert ('--batch-size 100 is the global batch, split evenly over the 3 processes: use a multiple of 3'
            in error('--nproc-per-node', 3))
    assert '--nnodes 2: the machines need a place to meet' in error('--nproc-per-node', 1, '--nnodes', 2)
    assert '--node-rank 2: must be from 0 to 1' in error('--nproc-per-node', 1, '--nnodes', 2, '--node-rank',
                                                         2,
                                                           '--rdzv-endpoint', 'localhost:1')
    assert 'expected HOST:PORT' in error('--nproc-per-node', 2, '--rdzv-endpoint', 'nowhere')
    assert ('--sync-bn: SyncBatchNorm runs on CUDA GPUs only'
            in error('--nproc-per-node', 2, '--sync-bn', '--device', 'cpu'))
    r = cli_here('resume', tmp_path / 'nowhere', '--nproc-per-node', 2, cwd=tmp_path, quick=False)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'starting' not in r.stdout, r.stderr
    assert f'resume {tmp_path / "nowhere"}: no such folder' in r.stderr
    # a --sync-bn run (allowed in one CPU process) cannot be resumed by several CPU processes
    r = cli('train', '--sync-bn', '--epochs', 1, '--limit-train', 300, '--limit-test', 100, '--data-root',
            tmp_path / 'data',
            '--no-progress', '--checkpoint', tmp_path / 'ck', '--out', tmp_path / 'out', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli_here('resume', tmp_path / 'ck', '--epochs', 2, '--nproc-per-node', 2, '--device', 'cpu',
                 cwd=tmp_path, quick=False)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'starting' not in r.stdout, r.stderr
    assert 'the run uses --sync-bn, which runs on CUDA GPUs only' in r.stderr
    assert not (tmp_path / 'never').exists()


@pytest.mark.long
def test_a_hung_rank_ends_the_job_within_the_timeout(tmp_path, data_root):
    """Process 1 hangs after epoch 1 (alive, never reaching the next collective): process 0's next collective
    times out, fit raises ProcessGroupError, and torchrun ends the job non-zero, stopping the hung process
    with SIGTERM. (A process frozen with SIGSTOP cannot take that SIGTERM: torchrun then waits its fixed 30 s
    before SIGKILL,
    which is torchrun's behaviour, not ours, and cost this test 30 s.)"""
    out = tmp_path / 'run'
    started = time.monotonic()
    rc, output = launch(out, '--data-root', data_root, '--epochs', 4, '--hang-after', 1, '--timeout', 10)
    took = time.monotonic() - started
    assert rc != 0, output
    assert (out / 'epoch1').read_text() == '1'   # process 1 finished epoch 1, then hung
    # the 10 s collective timeout, then torchrun's own shutdown, not the hour of sleep
    assert took < 120, took
    assert 'local_rank: 0' in output, output[-3000:]   # the waiting rank failed, and torchrun names it
    assert ('process 0 of 2 lost contact with the others in epoch 2' in output and
            'Timed out' in output), output[-3000:]


def test_a_plain_dataloader_is_refused_under_torchrun(tmp_path):
    """Every process would train on all of it: fit says what to pass instead, in every process, before
    training."""
    script = tmp_path / 'plain.py'
    script.write_text('''
import numpy as np, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from cnn_course.distributed import init_distributed
from cnn_course.train import fit
device = init_distributed('cpu', timeout_s=30)
data = DataLoader(TensorDataset(torch.randn(40, 8), torch.randint(0, 2, (40,))), batch_size=10)
net = nn.Linear(8, 2)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
fit(net, opt, nn.CrossEntropyLoss(), 1, data, None, device, np.zeros((0, 5)))
''')
    proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                             '--nproc-per-node=2', str(script)],
                            cwd=tmp_path, env=env_one_thread(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try: output, _ = proc.communicate(timeout=TIME_LIMIT)
    finally: stop(proc)
    assert proc.returncode != 0 and 'Epoch [1/1]' not in output
    said = ('each needs its own part of the training data: pass a DeviceLoader (fit shards it) or a '
            'DataLoader with a DistributedSampler')
    assert said in output, output[-3000:]


def _workers(launcher_pid:int) -> list:
    "The pids of the `cnn_course.cli` processes a launcher started (its children, from /proc)."
    children = Path(f'/proc/{launcher_pid}/task/{launcher_pid}/children').read_text().split()
    return [int(p) for p in children if b'cnn_course.cli' in Path(f'/proc/{p}/cmdline').read_bytes()]


@pytest.mark.long
def test_a_rank_killed_under_the_command_is_said_in_one_line(tmp_path, data_root):
    """`cnn-course train --nproc-per-node 2`, one rank SIGKILLed after an epoch is saved: no Python
    traceback, a line naming the process, how it ended, the saved epoch and the exact resume command; exit
    status 1; no folder
    left."""
    from cnn_course.checkpoint import read_checkpoint
    ck, temp = tmp_path / 'ck', tmp_path / 'temp'
    temp.mkdir()
    env = dict(env_one_thread(), TMPDIR=str(temp), PYTHONUNBUFFERED='1')
    cmd = [sys.executable, '-m', 'cnn_course.cli', 'train', '--nproc-per-node', '2', '--epochs', '20',
           '--limit-train',
           '3000', '--limit-test', '300', '--data-root', str(data_root), '--checkpoint', str(ck), '--out',
           str(tmp_path / 'out'), '--no-progress']
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + TIME_LIMIT
        while not (ck / 'last.pt').exists() or len(_workers(proc.pid)) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                # whole, not cut short as an assert's message is: the job's own account of what failed
                out, err = proc.communicate()
                pytest.fail(f'the job ended, or ran out of time, before an epoch was saved:\n{out}\n{err}')
            time.sleep(0.2)
        victim = _workers(proc.pid)[1]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally: stop(proc)
    assert proc.returncode == 1, err
    assert 'Traceback' not in out + err and 'ChildFailedError' not in err, err
    epoch = read_checkpoint(ck / 'last.pt')['epoch']
    line = err.strip().splitlines()[-1]
    assert (line.startswith('cnn-course: process ') and
            f'(pid {victim}) was killed by SIGKILL; torchrun stopped the others.' in line), err
    assert line.endswith(f'The checkpoints are intact ({ck / "last.pt"} holds epoch {epoch}): continue with '
                         f'`cnn-course resume {ck} --nproc-per-node 2`.'), line
    assert list(temp.iterdir()) == []  # torchrun's log folder went with the launcher


def test_the_launchers_failure_line_and_its_debug_report(tmp_path, monkeypatch, capsys):
    """A process killed under torchrun (a bare Python, in a second): one line; with --debug, torchrun's own
    ChildFailedError."""
    import argparse, tempfile
    import cnn_course.cli as cli
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    # where torchrun's log folder goes: it must not stay
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    shell = ['--nproc-per-node=1', '--standalone', '--no-python', sys.executable, '-c',
             'import os, signal; os.kill(os.getpid(), signal.SIGKILL)']
    before = {s: signal.getsignal(s) for s in cli._TORCHRUN_SIGNALS}
    rc = cli._torchrun(shell, argparse.Namespace(debug=False), 1, None, '--nproc-per-node 1')
    # torchrun's signal handlers do not outlive it: a later Ctrl-C is a KeyboardInterrupt again
    assert {s: signal.getsignal(s) for s in cli._TORCHRUN_SIGNALS} == before
    line = capsys.readouterr().err.strip()
    assert rc == 1 and '\n' not in line and list(tmp_path.iterdir()) == [], line
    assert re.fullmatch(r'cnn-course: process 0 of 1 \(pid \d+\) was killed by SIGKILL; torchrun stopped the '
                        r'others\. This run had no --checkpoint, so none of its epochs were saved\.',
                        line), line
    with pytest.raises(ChildFailedError): cli._torchrun(shell, argparse.Namespace(debug=True), 1, None, '')
