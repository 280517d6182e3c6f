"Lesson 3's training tools inside a real `fit`: early stopping, the plateau schedule, TensorBoard files."
import subprocess, sys
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

from cnn_course.core import torch_seed
from cnn_course.train import fit, Callback, EarlyStopping, LRRecorder, TensorBoardLogger, TB_TAGS


def _loaders(flip_validation=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 6, generator=g)
    y = (x[:, 0] > 0).long()
    # Validation labels flipped: the better the model learns, the worse its validation loss gets.
    val_y = 1 - y if flip_validation else y
    return DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x, val_y), batch_size=40)


class WeightsEachEpoch(Callback):
    def __init__(self): self.states = {}
    def after_epoch(self, run):
        self.states[run.epoch] = {k: v.clone() for k, v in run.net.state_dict().items()}


def test_early_stopping_stops_and_restores_best_weights():
    torch_seed(0)
    net = nn.Linear(6, 2)
    train, val = _loaders(flip_validation=True)
    seen = WeightsEachEpoch()
    es = EarlyStopping(patience=3)
    h = fit(net, optim.SGD(net.parameters(), lr=0.5), nn.CrossEntropyLoss(), 20, train, val, 'cpu',
            np.zeros((0, 5)), progress=False, callbacks=[seen, es])
    best = int(np.argmin(h[:, 3])) + 1
    assert best == es.best_epoch == 1                  # validation only gets worse after epoch 1
    assert len(h) == best + 3 and es.stopped_epoch == len(h)
    assert all(torch.equal(v, seen.states[best][k]) for k, v in net.state_dict().items())


def test_plateau_scheduler_cuts_the_rate_and_recorder_sees_it():
    torch_seed(0)
    net = nn.Linear(6, 2)
    train, val = _loaders(flip_validation=True)
    opt = optim.Adam(net.parameters(), lr=1e-2)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, mode='min', factor=0.1, patience=1)
    lrs = LRRecorder()
    fit(net, opt, nn.CrossEntropyLoss(), 5, train, val, 'cpu', np.zeros((0, 5)), progress=False,
        scheduler=sched, callbacks=[lrs])
    assert lrs.epochs == [1, 2, 3, 4, 5]
    assert lrs.lrs[:3] == [1e-2, 1e-2, 1e-2] and lrs.lrs[3] == pytest.approx(1e-3)


def test_tensorboard_event_file_matches_history(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    torch_seed(0)
    net = nn.Linear(6, 2)
    train, val = _loaders()
    opt = optim.SGD(net.parameters(), lr=0.2)
    lrs = LRRecorder()
    h = fit(net, opt, nn.CrossEntropyLoss(), 3, train, val, 'cpu', np.zeros((0, 5)), progress=False,
            scheduler=optim.lr_scheduler.StepLR(opt, 1, gamma=0.5),
            callbacks=[TensorBoardLogger(tmp_path / 'tb'), lrs])
    assert list((tmp_path / 'tb').glob('events.out.tfevents.*')), 'no event file written'
    ea = EventAccumulator(str(tmp_path / 'tb')); ea.Reload()
    for col, key in enumerate(('train_loss', 'train_acc', 'val_loss', 'val_acc'), start=1):
        logged = ea.Scalars(TB_TAGS[key])
        assert [e.step for e in logged] == [1, 2, 3]
        assert np.allclose([e.value for e in logged], h[:, col], rtol=1e-6), key
    assert np.allclose([e.value for e in ea.Scalars(TB_TAGS['lr'])], [0.2, 0.1, 0.05])
    assert lrs.lrs == pytest.approx([0.2, 0.1, 0.05])


def test_bad_options_fail_before_training(tmp_path):
    net = nn.Linear(6, 2)
    before = [p.clone() for p in net.parameters()]
    train, val = _loaders()
    opt = optim.SGD(net.parameters(), lr=0.2)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='patience'): EarlyStopping(patience=bad)
    (tmp_path / 'a_file').write_text('not a folder')
    with pytest.raises(ValueError, match='cannot create this folder: .* is a file, not a folder'):
        TensorBoardLogger(tmp_path / 'a_file' / 'logs')
    with pytest.raises(ValueError, match='no test_loader'):
        fit(net, opt, nn.CrossEntropyLoss(), 2, train, None, 'cpu', np.zeros((0, 5)), progress=False,
            scheduler=optim.lr_scheduler.ReduceLROnPlateau(opt))
    with pytest.raises(ValueError, match='no test_loader'):
        fit(net, opt, nn.CrossEntropyLoss(), 2, train, None, 'cpu', np.zeros((0, 5)), progress=False,
            callbacks=[EarlyStopping(3)])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_missing_tensorboard_says_how_to_install():
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "from cnn_course.train import TensorBoardLogger\n"
            "try: TensorBoardLogger('x')\n"
            "except ImportError as e: print('MSG', e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert 'MSG' in out.stdout and 'pip install tensorboard' in out.stdout, out.stdout + out.stderr
