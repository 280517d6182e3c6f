"""Run by tests/test_distributed.py, under `torchrun` or as one plain process: lesson 1's CNN trained with
`fit` on a real Fashion-MNIST subset. Each process writes what it started and ended with to
OUT/rank{RANK}.pt; rank 0 alone writes OUT/history.npy (and the checkpoints, with --checkpoint). --resume
continues the run in
--checkpoint.
--split N (one process): every batch goes through the model in the N parts N processes would each compute."""
import argparse, atexit, os, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from cnn_course.checkpoint import Checkpoint, resume
from cnn_course.core import torch_seed
from cnn_course.data import DeviceLoader, load_dataset, make_transform, train_val_split
from cnn_course.distributed import dist_info, init_distributed, is_main_process
from cnn_course.models import MnistCNN
from cnn_course.train import Callback, fit


class Record(Callback):
    """Keeps what `fit` counted in the last epoch's validation; slows an epoch down (for a kill) or hangs on
    request."""
    def __init__(self, out, pause, hang_after=0):
        self.out, self.pause, self.hang_after, self.n_val = out, pause, hang_after, None
    def after_batch(self, run):
        if self.pause: time.sleep(self.pause)
    def after_epoch(self, run):
        self.n_val = run.n_val
        (self.out / f'epoch{dist_info()[0]}').write_text(str(run.epoch))  # how far this process got
        if dist_info()[0] == 1 and run.epoch == self.hang_after:
            # stuck (a deadlock, a stalled disk): alive, but never reaches the next collective
            time.sleep(3600)


class ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward hands on a contiguous gradient (a process's own output's gradient is
    contiguous)."""
    @staticmethod
    def forward(ctx, x): return x.view_as(x)
    @staticmethod
    def backward(ctx, grad): return grad.contiguous()


class SplitBatch(nn.Module):
    """One process doing the arithmetic of N: each batch dealt as `DeviceLoader.shard` deals it (items r, r +
    N, ...), every part through the model on its own (the same kernels on the same sizes as in process r),
    the outputs put back in the batch's order. The loss's mean over the whole batch then gives each part's
    gradient divided by N, exactly as DistributedDataParallel averages them (halving is exact in floating
    point), so only the order of additions that
    never feed back into training (the epoch's loss sums) differs from a run in N processes."""
    def __init__(self, net, parts): super().__init__(); self.net, self.parts = net, parts
    def forward(self, x):
        if len(x) == 1: return self.net(x)  # fit's look at one image before training
        if len(x) % self.parts:
            raise ValueError(f'a batch of {len(x)} does not split into {self.parts} equal parts')
        outs = [ContiguousGrad.apply(self.net(x[r::self.parts].contiguous())) for r in range(self.parts)]
        return torch.stack(outs, 1).flatten(0, 1)


def record_group_left(out):
    """At exit, OUT/left{RANK}: whether the process group was already gone (registered before
    `init_distributed`, so run after its own exit handler)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f'left{dist_info()[0]}').write_text(str(not dist.is_initialized()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', type=Path, required=True)
    p.add_argument('--data-root', default='./data')
    p.add_argument('--n-train', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=50, help='the global batch: split over the processes')
    p.add_argument('--checkpoint', type=Path, default=None)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--pause', type=float, default=0.0, help='seconds to sleep after every batch')
    p.add_argument('--timeout', type=float, default=30.0,
                   help='seconds a collective waits for a lost process')
    p.add_argument('--hang-after', type=int, default=0, help='process 1 hangs after this epoch (0: never)')
    p.add_argument('--split', type=int, default=1, help='one process: compute every batch in this many parts')
    a = p.parse_args()
    atexit.register(record_group_left, a.out)
    device = init_distributed('cpu', timeout_s=a.timeout)
    rank, world, _ = dist_info()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f'pid{rank}').write_text(str(os.getpid()))
    torch_seed(123)
    full = load_dataset('fashion-mnist', train=True, transform=make_transform(), limit=a.n_train,
                        root=a.data_root)
    train_set, val_set = train_val_split(full, 0.2, 123)
    train = DeviceLoader(train_set, a.batch_size, shuffle=True, device=device)
    val = DeviceLoader(val_set, 100, device=device)
    net = MnistCNN().to(device)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    model = SplitBatch(net, a.split) if a.split > 1 else net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    record = Record(a.out, a.pause, a.hang_after)
    callbacks = [record] + ([Checkpoint(a.checkpoint)] if a.checkpoint else [])
    history = np.zeros((0, 5))
    if a.resume: history = resume(a.checkpoint, net, optimizer, callbacks=callbacks, epochs=a.epochs)
    history = fit(model, optimizer, nn.CrossEntropyLoss(), a.epochs - len(history), train, val, device,
                  history, progress=False, callbacks=callbacks)
    torch.save({'history': history, 'init': init, 'state': net.state_dict(), 'n_val': record.n_val,
                'world_size': world, 'n_val_set': len(val_set)}, a.out / f'rank{rank}.pt')
    if is_main_process(): np.save(a.out / 'history.npy', history)


if __name__ == '__main__':
    sys.exit(main())
