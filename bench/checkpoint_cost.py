#!/usr/bin/env python
"""What a `Checkpoint` adds to an epoch of lesson 4's recipe (CifarCNN, SGD, batches of 20).

Run by hand: `python bench/checkpoint_cost.py [--device cpu] [--threads 1] [--repeat 20] [--folder DIR]`.
It times (1) one checkpoint write, the way `Checkpoint.after_epoch` does it (gather the state, serialise,
atomic write of last.pt with fsync, and a second atomic write for best.pt), and (2) training steps of the
same model at batch 20, scaled to a full epoch of 40,000 images (CIFAR-10's training part after the
80/20 split). The ratio is measured within one run; the folder's file system matters (a Google Drive
mount in Colab is much slower than the runtime's local disk).
"""
from __future__ import annotations
import argparse, statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import torch
import torch.nn as nn
from cnn_course.core import get_device, torch_seed
from cnn_course.models import CifarCNN
from cnn_course.train import EarlyStopping, LRRecorder
from cnn_course.checkpoint import Checkpoint


class FakeRun:
    "Just enough of fit's run object for Checkpoint.after_epoch."
    def __init__(self, net, optimizer, callbacks):
        self.net, self.optimizer, self.scheduler, self.callbacks = net, optimizer, None, callbacks
        self.history, self.epoch, self.last_epoch = np.zeros((0, 5)), 0, 30
        self.stop, self.has_validation = False, True


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default=None)
    p.add_argument('--repeat', type=int, default=20, help='checkpoint writes to time')
    p.add_argument('--steps', type=int, default=50, help='training steps to time')
    p.add_argument('--folder', default=None, help='where to write (default: a temporary folder)')
    p.add_argument('--threads', type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    device = get_device(args.device)
    torch_seed()
    net = CifarCNN().to(device)
    # momentum: the optimizer has state to save
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(20, 3, 32, 32, device=device), torch.randint(0, 10, (20,), device=device)
    criterion = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        criterion(net(x), y).backward()
        optimizer.step()
    for _ in range(5): step()  # warm-up
    sync(device); start = time.perf_counter()
    for _ in range(args.steps): step()
    sync(device); per_step = (time.perf_counter() - start) / args.steps
    epoch = per_step * 40_000 / 20

    folder = Path(args.folder or tempfile.mkdtemp(prefix='ckpt_bench_'))
    cp = Checkpoint(folder, overwrite=True)
    run = FakeRun(net, optimizer, [EarlyStopping(), LRRecorder(), cp])
    cp.before_fit(run)
    for i in range(args.repeat):
        run.epoch = i + 1
        # a falling validation loss: every epoch is the best so far, so both files are written (the worst
        # case)
        run.history = np.vstack((run.history, [run.epoch, 1.0, 0.5, 1.0 / run.epoch, 0.5]))
        cp.after_epoch(run)
    write = statistics.median(cp.write_seconds)
    size = (folder / 'last.pt').stat().st_size / 1e6
    print(f'device {device}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads')
    print(f'checkpoint write (last.pt + best.pt, {size:.1f} MB each): median {1000 * write:.1f} ms '
          f'(min {1000 * min(cp.write_seconds):.1f}, max {1000 * max(cp.write_seconds):.1f}) over '
          f'{args.repeat}')
    print(f'training: {1000 * per_step:.2f} ms per step of 20 images -> {epoch:.1f} s per epoch of 40,000 '
          'images')
    print(f'a checkpoint adds {100 * write / epoch:.2f}% to an epoch')


if __name__ == '__main__':
    main()
