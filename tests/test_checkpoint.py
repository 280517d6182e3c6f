"""Checkpoints on disk: a training process killed with SIGKILL and resumed, atomic writes, and every kind of
bad file."""
import os, random, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import TensorDataset

from cnn_course.core import torch_seed
from cnn_course.data import DeviceLoader
from cnn_course.train import fit, Callback, EarlyStopping, LRRecorder
from cnn_course.checkpoint import (Checkpoint, CheckpointError, NotACheckpointError, DamagedCheckpointError,
                                   ModelMismatchError, save_checkpoint, load_checkpoint, read_checkpoint,
                                   resume)
from cnn_course.runs import RunConfig, resume_run, train_run

ROOT = Path(__file__).resolve().parents[1]

# A run small enough for a few seconds on a CPU, with every kind of state: dropout (random masks), a shuffled
# DeviceLoader (random order), SGD momentum, a plateau scheduler and early stopping.
CONFIG = dict(dataset='cifar10', model='cifar_cnn', limit_train=120, limit_test=40, batch_size=16,
              eval_batch_size=500,
              val_fraction=0.2, optimizer='sgd', lr=0.01, momentum=0.9, scheduler='plateau', patience=10,
              epochs=5, device='cpu')

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    from cnn_course.runs import RunConfig, train_run, resume_run
    from cnn_course.train import Callback

    class Saved(Callback):
        order = 150  # after Checkpoint: the line means that epoch's checkpoint is on disk
        def after_epoch(self, run): print(f'saved {run.epoch}', flush=True)

    command, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
    config = json.loads(sys.argv[4])
    if command == 'train': run = train_run(RunConfig(**config), folder, progress=False, callbacks=[Saved()])
    else: run = resume_run(folder, progress=False, callbacks=[Saved()])
    np.save(out, run.history)
''')


def _env(tmp_path):
    # One thread each: the two training processes run side by side without fighting over the cores; every
    # process uses the same count, so the float sums are done in the same order (bit-for-bit comparisons).
    # TMPDIR: a process killed on purpose runs no exit handlers; its synthetic data stays in the test's
    # folder, not /tmp.
    env = dict(os.environ, CNN_COURSE_QUICK='1', PYTHONPATH=str(ROOT), MPLBACKEND='Agg', OMP_NUM_THREADS='1',
               TMPDIR=str(tmp_path))
    env.pop('IN_TEST', None)
    return env


def _start(tmp_path, command, folder, out, config=CONFIG):
    script = tmp_path / 'run.py'
    script.write_text(SCRIPT)
    import json
    return subprocess.Popen([sys.executable, str(script), command, str(folder), str(out),
                             json.dumps({**config, 'data_root': str(tmp_path / 'data')})],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


@pytest.mark.long
def test_killed_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    # The uninterrupted run, in a process of its own, runs alongside the one we kill.
    full = _start(tmp_path, 'train', tmp_path / 'full', tmp_path / 'full.npy')
    victim = _start(tmp_path, 'train', tmp_path / 'killed', tmp_path / 'never.npy')
    lines, deadline = [], time.monotonic() + 90
    for line in victim.stdout:  # wait until epoch 2's checkpoint is written, then kill during epoch 3
        lines.append(line)
        if line.strip() == 'saved 2': break
        assert time.monotonic() < deadline, ''.join(lines)
    assert lines and lines[-1].strip() == 'saved 2', 'the training process ended early:\n' + ''.join(lines)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / 'never.npy').exists()
    killed_at = read_checkpoint(tmp_path / 'killed' / 'last.pt')['epoch']  # loadable whatever the instant
    assert killed_at in (2, 3), killed_at
    out = _finish(_start(tmp_path, 'resume', tmp_path / 'killed', tmp_path / 'resumed.npy'))
    assert f'resumed from epoch {killed_at} of 5' in out
    _finish(full)
    h_full, h_resumed = np.load(tmp_path / 'full.npy'), np.load(tmp_path / 'resumed.npy')
    assert h_full.shape == (5, 5)
    assert np.array_equal(h_full, h_resumed), (h_full, h_resumed)
    # the files agree too: the same last weights, and best.pt is the same epoch
    a, b = read_checkpoint(tmp_path / 'full' / 'last.pt'), read_checkpoint(tmp_path / 'killed' / 'last.pt')
    assert all(torch.equal(a['model_state'][k], b['model_state'][k]) for k in a['model_state'])
    assert (read_checkpoint(tmp_path / 'full' / 'best.pt')['epoch']
            == read_checkpoint(tmp_path / 'killed' / 'best.pt')['epoch'])
    # a finished run has nothing left to do (in this process: the command line would call the same function)
    monkeypatch.setenv('CNN_COURSE_QUICK', '1')
    assert resume_run(tmp_path / 'killed', progress=False) is None


WRITER = textwrap.dedent('''
    import sys, torch, torch.nn as nn
    from cnn_course.checkpoint import save_checkpoint
    net = nn.Linear(512, 512)
    i = 0
    while True:
        i += 1
        with torch.no_grad(): net.weight.fill_(i)
        save_checkpoint(sys.argv[1], net, epoch=i)
        if i == 1: print('first', flush=True)
''')


def test_kill_at_any_instant_leaves_a_loadable_checkpoint(tmp_path):
    script = tmp_path / 'writer.py'
    script.write_text(WRITER)
    path = tmp_path / 'ckpt' / 'last.pt'
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], env=_env(tmp_path),
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == 'first'
        time.sleep(rng.uniform(0.05, 0.4))  # somewhere in the middle of a write, most likely
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        ckpt = read_checkpoint(path)
        assert ckpt['epoch'] >= 1 and bool((ckpt['model_state']['weight'] == ckpt['epoch']).all())
    # a temporary file left by a kill never hides the real one, and Checkpoint clears it at the next start
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()  # a process that has ended: what a killed writer's id looks like afterwards
    (path.parent / f'.last.pt.{gone.pid}.abc123.tmp').write_bytes(b'PK\x03\x04 half a file')
    read_checkpoint(path.parent)
    net = nn.Linear(4, 2)
    fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 1, *_loaders(4), 'cpu',
        np.zeros((0, 5)), progress=False, callbacks=[Checkpoint(tmp_path / 'run')])
    (tmp_path / 'run' / f'.last.pt.{gone.pid}.zzz.tmp').write_bytes(b'junk')
    resume(tmp_path / 'run', nn.Linear(4, 2))
    cp = Checkpoint(tmp_path / 'run')
    net = nn.Linear(4, 2)
    fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 1, *_loaders(4), 'cpu',
        read_checkpoint(tmp_path / 'run')['history'], progress=False, callbacks=[cp])
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == ['best.pt', 'last.pt']


# ---------------------------------------------------------------- in-process resume, every piece of state

class DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_shape = (6,)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    def forward(self, x): return self.body(x)


def _loaders(features=6, n=200):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    return (DeviceLoader(ds, batch_size=16, shuffle=True, device='cpu'),
            DeviceLoader(ds, batch_size=40, device='cpu'))


def _parts(seed=0):
    torch_seed(seed)
    net = DropNet()
    opt = optim.Adam(net.parameters(), lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return net, opt, sched, [EarlyStopping(patience=20, monitor='val_acc'), LRRecorder()]


def _train(net, opt, sched, cbs, epochs, history, folder):
    train, val = _loaders()
    cp = Checkpoint(folder, monitor='val_acc')
    return fit(net, opt, nn.CrossEntropyLoss(), epochs, train, val, 'cpu', history, progress=False,
               scheduler=sched, callbacks=[*cbs, cp]), cp


def test_resume_in_process_matches_uninterrupted(tmp_path):
    full, _ = _train(*_parts(), 6, np.zeros((0, 5)), tmp_path / 'a')
    # the same run, stopped after epoch 3 (the real kill is in test_killed_run_resumes_bit_for_bit)
    net, opt, sched, cbs = _parts()
    part, _ = _train(net, opt, sched, cbs, 3, np.zeros((0, 5)), tmp_path / 'c')
    net, opt, sched, cbs = _parts(seed=99)  # other weights and generators
    # Everything is built before resume: building a loader can draw from torch's generator (a DataLoader
    # iterator takes a seed from it), so resume must come last, right before fit.
    train, val = _loaders()
    cp = Checkpoint(tmp_path / 'c', monitor='val_acc')
    h = resume(tmp_path / 'c', net, opt, sched, [*cbs, cp])
    assert np.array_equal(h, part) and cbs[1].lrs == [0.01, 0.01, 0.005] and cp.best_epoch is not None
    h = fit(net, opt, nn.CrossEntropyLoss(), 3, train, val, 'cpu', h, progress=False, scheduler=sched,
            callbacks=[*cbs, cp])
    assert np.array_equal(h, full)
    assert cbs[1].lrs == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]


def test_checkpoint_loads_with_weights_only_and_holds_everything(tmp_path):
    net, opt, sched, cbs = _parts()
    h, cp = _train(net, opt, sched, cbs, 2, np.zeros((0, 5)), tmp_path)
    ckpt = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert ckpt['format'] == 'cnn_course.checkpoint' and ckpt['epoch'] == 2 and ckpt['last_epoch'] == 2
    assert set(ckpt['callbacks']) == {'EarlyStopping', 'LRRecorder', 'Checkpoint'}
    assert ckpt['scheduler']['class'] == 'StepLR' and ckpt['optimizer']['class'] == 'Adam'
    assert set(ckpt['rng']) == {'python', 'numpy', 'torch', 'cuda'}
    assert ckpt['model']['class'] == 'DropNet' and ckpt['model']['shapes']['body.0.weight'] == [16, 6]
    assert torch.equal(ckpt['history'], torch.from_numpy(h))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['best.pt', 'last.pt']  # no temporary files


def test_numpy_values_are_stored_safely_and_bad_values_refused(tmp_path):
    class NumpyState(Callback):
        def __init__(self, value): self.value = value
        def state_dict(self): return {'a': np.arange(3), 'b': np.float32(1.5), 'c': self.value}
        def load_state_dict(self, s): self.loaded = s
    net = nn.Linear(2, 2)
    save_checkpoint(tmp_path / 'ok.pt', net, callbacks=[NumpyState(np.int64(4))])
    before = (tmp_path / 'ok.pt').read_bytes()
    cb = NumpyState(0)
    load_checkpoint(tmp_path / 'ok.pt', callbacks=[cb])
    assert torch.equal(cb.loaded['a'], torch.arange(3)) and cb.loaded['b'] == 1.5 and cb.loaded['c'] == 4
    with pytest.raises(TypeError, match=r"\['callbacks'\]\['NumpyState'\]\['c'\] is a object"):
        save_checkpoint(tmp_path / 'ok.pt', net, callbacks=[NumpyState(object())])
    assert (tmp_path / 'ok.pt').read_bytes() == before  # the failed save left the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ok.pt']


# ---------------------------------------------------------------- bad checkpoints: clear errors, nothing
# overwritten

@pytest.fixture
def saved(tmp_path):
    torch_seed(0)
    net = DropNet()
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(tmp_path / 'last.pt', net, opt, history=np.zeros((0, 5)))
    return path


def _fresh():
    torch_seed(5)
    net = DropNet()
    return net, {k: v.clone() for k, v in net.state_dict().items()}


def _unchanged(net, before):
    return all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_different_model_is_refused_by_name_and_shape(saved):
    bytes_before = saved.read_bytes()
    other = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ModelMismatchError, match=r'saved from a DropNet, but it is being loaded into a '
                                                 r'Sequential') as e:
        load_checkpoint(saved, other)
    assert 'only in the checkpoint: body.0.weight' in str(e.value) and 'nothing was loaded' in str(e.value)
    assert isinstance(e.value, ValueError) and _unchanged(other, before)

    class WideNet(DropNet):
        def __init__(self):
            super().__init__(); self.body[0] = nn.Linear(6, 8); self.body[3] = nn.Linear(8, 2)
    wide = WideNet()
    with pytest.raises(ModelMismatchError, match=r'body\.0\.weight: saved \[16, 6\], this model \[8, 6\]'):
        load_checkpoint(saved, wide)

    class SameShapes(DropNet): pass
    same = SameShapes()
    with pytest.raises(ModelMismatchError, match='the tensor shapes agree'):
        load_checkpoint(saved, same)
    load_checkpoint(saved, same, check_class=False)  # on purpose: allowed
    assert saved.read_bytes() == bytes_before


def test_wrong_optimizer_is_refused_before_anything_loads(saved):
    net, before = _fresh()
    with pytest.raises(CheckpointError, match='holds the state of a SGD optimizer, not a Adam'):
        load_checkpoint(saved, net, optim.Adam(net.parameters()))
    assert _unchanged(net, before)
    with pytest.raises(CheckpointError, match='no scheduler'):
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        load_checkpoint(saved, net, opt, optim.lr_scheduler.StepLR(opt, 1))
    assert _unchanged(net, before)


@pytest.mark.parametrize('kind', ['text', 'random', 'state_dict', 'pickled_model', 'other_object'])
def test_not_a_checkpoint(saved, kind):
    path = saved.parent / f'{kind}.pt'
    if kind == 'text': path.write_text('epoch,loss\n1,2.3\n')
    elif kind == 'random':
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    elif kind == 'state_dict': torch.save(DropNet().state_dict(), path)
    elif kind == 'pickled_model': torch.save(DropNet(), path)
    else: torch.save({'epoch': 3, 'weights': [1, 2]}, path)
    net, before = _fresh()
    with pytest.raises(NotACheckpointError) as e: load_checkpoint(path, net)
    message = str(e.value)
    assert str(path) in message
    expected = {'text': 'not a file written by torch.save', 'random': 'not a file written by torch.save',
                'state_dict': 'net.load_state_dict(torch.load(path, weights_only=True))',
                'pickled_model': 'refuses to run', 'other_object': 'not a cnn_course checkpoint'}[kind]
    assert expected in message, message
    assert isinstance(e.value, ValueError) and _unchanged(net, before)


@pytest.mark.parametrize('keep', [0, 10, 0.5, -1])
def test_truncated_checkpoint(saved, keep):
    data = saved.read_bytes()
    n = keep if isinstance(keep, int) and keep >= 0 else (len(data) - 1 if keep == -1
        else int(len(data) * keep))
    path = saved.parent / 'cut.pt'
    path.write_bytes(data[:n])
    net, before = _fresh()
    with pytest.raises(DamagedCheckpointError, match='truncated or damaged') as e: load_checkpoint(path, net)
    assert 'nothing was loaded' in str(e.value) and _unchanged(net, before)
    assert saved.read_bytes() == data


def test_missing_file_and_folder(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match='the folder has: last.pt'):
        read_checkpoint(saved.parent / 'best.pt')
    with pytest.raises(FileNotFoundError, match='no checkpoint at'):
        read_checkpoint(tmp_path / 'nowhere' / 'last.pt')
    assert read_checkpoint(saved.parent)['epoch'] == 0  # a folder means its last.pt


def test_a_new_run_does_not_overwrite_a_longer_one(tmp_path):
    net, opt, sched, cbs = _parts()
    _train(net, opt, sched, cbs, 2, np.zeros((0, 5)), tmp_path)
    before = (tmp_path / 'last.pt').read_bytes()
    net, opt, sched, cbs = _parts()
    with pytest.raises(ValueError, match='already holds a run trained for 2 epochs'):
        _train(net, opt, sched, cbs, 1, np.zeros((0, 5)), tmp_path)
    assert (tmp_path / 'last.pt').read_bytes() == before
    train, val = _loaders()
    fit(net, opt, nn.CrossEntropyLoss(), 1, train, val, 'cpu', np.zeros((0, 5)), progress=False,
        callbacks=[Checkpoint(tmp_path, overwrite=True)])
    assert read_checkpoint(tmp_path)['epoch'] == 1
    with pytest.raises(ValueError, match='monitor must be one of'): Checkpoint(tmp_path, monitor='accuracy')


def test_resume_run_needs_a_config(tmp_path):
    save_checkpoint(tmp_path / 'last.pt', nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match='records no run config'): resume_run(tmp_path)


class Interrupt(Callback):
    """Jupyter's stop button as a kernel gets it, after epoch `at`: a real SIGINT, which Python raises as
    KeyboardInterrupt."""
    order = 150  # after Checkpoint: that epoch is on disk
    def __init__(self, at): self.at = at
    def after_epoch(self, run):
        if run.epoch == self.at:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the interrupt lands here, at once


def test_an_interrupted_run_says_what_is_kept_and_still_stops(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('CNN_COURSE_QUICK', '1')  # CIFAR-10's synthetic stand-in
    ck, cfg = tmp_path / 'ck', RunConfig(**CONFIG, data_root=str(tmp_path / 'data'))
    with pytest.raises(KeyboardInterrupt):  # kept: Jupyter needs it to stop the cell
        train_run(cfg, ck, progress=False, callbacks=[Interrupt(2)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert read_checkpoint(ck / 'last.pt')['epoch'] == 2
    assert line == (f"Interrupted: {ck / 'last.pt'} holds epoch 2 of 5; continue with "
                    f"resume_run({str(ck)!r}), "
                    f'or `cnn-course resume {ck}` in a shell.'), line
    assert len(resume_run(ck, progress=False).history) == 5  # the advice works


def test_a_plain_fit_interrupted_names_resume(tmp_path, capsys):
    net, opt, sched, cbs = _parts()
    with pytest.raises(KeyboardInterrupt):
        _train(net, opt, sched, [*cbs, Interrupt(1)], 3, np.zeros((0, 5)), tmp_path)
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"Interrupted: {tmp_path / 'last.pt'} holds epoch 1 of 3; continue with resume({str(tmp_path)!r}, "
        "net, optimizer, ...).")


def test_an_interrupt_right_after_the_write_names_the_epoch_on_disk(tmp_path, capsys, monkeypatch):
    """Ctrl-C that lands after last.pt's rename, before the write returns (it happened to a CI run): the
    line names the epoch the file holds, not 'nothing to resume'."""
    import cnn_course.core as core
    real_sync, interrupted = core._fsync_dir, []
    def sync_then_interrupt(folder):
        real_sync(folder)
        if not interrupted and (tmp_path / 'last.pt').exists():
            interrupted.append(True)
            raise KeyboardInterrupt  # as a SIGINT raises it there
    monkeypatch.setattr(core, '_fsync_dir', sync_then_interrupt)
    net, opt, sched, cbs = _parts()
    with pytest.raises(KeyboardInterrupt):
        _train(net, opt, sched, cbs, 3, np.zeros((0, 5)), tmp_path)
    assert interrupted and read_checkpoint(tmp_path / 'last.pt')['epoch'] == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"Interrupted: {tmp_path / 'last.pt'} holds epoch 1 of 3; continue with resume({str(tmp_path)!r}, "
        "net, optimizer, ...).")
