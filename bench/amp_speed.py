#!/usr/bin/env python
"""`fit` in float32 against `fit(amp='auto', channels_last=True)` on lesson 3's model and real Fashion-MNIST,
and DeviceLoader's decode all at once against image by image.

Run by hand (never a timed test):  python bench/amp_speed.py [--n-train 10000] [--epochs 3] [--threads 2]
Prints seconds per epoch for each setting (the median of --epochs after a warm-up epoch; the `fit` rows take
turns, an epoch each, so that the machine's drift weighs on all alike) and their ratio, measured in one run,
the machine's float32 and bf16 matrix-product peaks (GFLOP/s), and the share of the peak each setting's epoch
reaches. The source's loop runs the source's layers (PyTorch's nn.Dropout); `fit` runs the course's
FashionCNN (FastDropout) and, in one more row, the source's layers, so the dropout's share of the gain shows
on its own. Needs the real Fashion-MNIST (Debian's dataset-fashion-mnist, or
--data-root holding it).
"""
from __future__ import annotations
import argparse, contextlib, functools, io, os, platform, statistics, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.data import DeviceLoader, load_dataset, make_transform
from torchvision import transforms
from cnn_course.models import FashionCNN
from cnn_course.train import fit, resolve_amp, _reuse_freed_memory
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the source's loop, line for line (see fit_speed.py)
from fit_speed import forward_macs, source_fashion_cnn, source_fit, source_transform
from torch.utils.data import DataLoader


def matmul_peak(dtype, n=1024, repeat=20) -> float:
    "GFLOP/s of an n x n matrix product in `dtype` on the CPU (the best of `repeat`)."
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3): a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter(); fn(); return time.perf_counter() - start


def one_epoch_at_a_time(train_epochs, net, optimizer, train, val, device):
    """A function that trains `net` one more epoch with `train_epochs` (`fit` or the source's loop, called as
    `train_epochs(net, optimizer, criterion, 1, train, val, device, history)`) and returns its seconds and
    the history so far."""
    history = np.zeros((0, 5))
    def epoch():
        nonlocal history
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            history = train_epochs(net, optimizer, nn.CrossEntropyLoss(), 1, train, val, device, history)
        return time.perf_counter() - start, history
    return epoch


def fit_row(train, val, model=FashionCNN, **options):
    """Lesson 3's recipe (Adam 1e-3) with `fit` for `model()` with `options`, one epoch per call (see
    `one_epoch_at_a_time`)."""
    torch_seed(123)
    net = model()
    return one_epoch_at_a_time(functools.partial(fit, progress=False, **options), net,
                               optim.Adam(net.parameters(), lr=1e-3), train, val, 'cpu')


def source_row(a):
    """The source's loop (per-image transforms, a DataLoader, .item() per batch), same recipe, one epoch per
    call."""
    train_set = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, limit=a.n_train,
                             transform=source_transform(False))
    test_set = load_dataset('fashion-mnist', train=False, root=a.data_root, download=False, limit=a.n_test,
                            transform=source_transform(False))
    train = DataLoader(train_set, batch_size=a.batch_size, shuffle=True)
    val = DataLoader(test_set, batch_size=500)
    torch_seed(123)
    net = source_fashion_cnn()
    return one_epoch_at_a_time(source_fit, net, optim.Adam(net.parameters(), lr=1e-3), train, val,
                               torch.device('cpu'))


def timed(rows, epochs) -> dict:
    """`{name: (median seconds per epoch, history)}` for `rows` (`{name: epoch function}`): one untimed
    warm-up epoch each, then `epochs` rounds in which every row trains one epoch in turn, so that a machine
    slowing down or speeding
    up during the run weighs on every row alike."""
    for epoch in rows.values(): epoch()
    seconds, histories = {name: [] for name in rows}, {}
    for _ in range(epochs):
        for name, epoch in rows.items():
            took, histories[name] = epoch()
            seconds[name].append(took)
    return {name: (statistics.median(seconds[name]), histories[name]) for name in rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-train', type=int, default=10_000)
    p.add_argument('--n-test', type=int, default=2_000)
    p.add_argument('--epochs', type=int, default=3, help='timed epochs per row (their median counts)')
    p.add_argument('--batch-size', type=int, default=100)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--data-root', default='./data')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    train_set = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, limit=a.n_train)
    test_set = load_dataset('fashion-mnist', train=False, root=a.data_root, download=False, limit=a.n_test)
    train = DeviceLoader(train_set, a.batch_size, shuffle=True, device='cpu')
    val = DeviceLoader(test_set, 500, device='cpu')
    dtype, said = resolve_amp('auto', 'cpu')
    print(f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch '
          f'{torch.__version__}; '
          f"amp='auto' here: {said}")
    print(f'lesson 3 FashionCNN, real Fashion-MNIST, {a.n_train} training images, batch {a.batch_size}, '
          f'the median of {a.epochs} timed epochs after a warm-up epoch')
    fp32, bf16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f'matrix-product peak (1024x1024): float32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s '
          f'({bf16 / fp32:.2f}x)')
    # a training step is about 3 forward passes of work (forward, and the backward's two products); validation
    # is 1
    macs = sum(m for _, m in forward_macs(FashionCNN(), (1, 28, 28)))
    flop_per_epoch = 2 * macs * (3 * len(train.y) + len(val.y))
    amp_on = dtype is not None
    rows = [('fit, float32, nn.Dropout', dict(model=source_fashion_cnn)), ('fit, float32', {}),
            ('fit, channels_last', dict(channels_last=True)), ("fit, amp='auto'", dict(amp='auto')),
            ("fit, amp='auto' + channels_last", dict(amp='auto', channels_last=True)),
            ("  the same with nn.Dropout", dict(amp='auto', channels_last=True, model=source_fashion_cnn))]
    # the source's loop first, on its own: `fit` asks glibc to keep freed memory
    # (cnn_course.train._reuse_freed_memory)
    # and the process keeps that setting, so the source's loop as the source ran it can only be timed before
    # any `fit`
    (source, history), = timed({'source': source_row(a)}, a.epochs).values()
    def peak_share(seconds, options):
        peak = bf16 if amp_on and options.get('amp') else fp32
        return (f'{flop_per_epoch / seconds / 1e9:4.0f} GFLOP/s = '
                f'{flop_per_epoch / seconds / 1e9 / peak:4.1%} of the '
                f'{"bf16" if peak is bf16 else "float32"} peak')
    print(f"  {'the source loop (nn.Dropout)':34s} {source:6.2f} s/epoch   vs source 1.00x   "
          f"{'':22s}val_acc {history[-1, 4]:.4f}   {peak_share(source, {})}")
    # then every `fit` row and the source's loop again, now with the allocator setting `fit` makes (so its
    # part of the
    # gain shows on its own), an epoch of each in turn
    epochs = {name: fit_row(train, val, **options) for name, options in rows}
    kept = _reuse_freed_memory()
    if kept: epochs['the source loop, freed memory kept'] = source_row(a)
    results = timed(epochs, a.epochs)
    base = results['fit, float32'][0]
    for name, options in rows:
        seconds, history = results[name]
        versus = f'vs fit float32 {base / seconds:4.2f}x' if name != 'fit, float32, nn.Dropout' else ''
        print(f'  {name:34s} {seconds:6.2f} s/epoch   vs source {source / seconds:4.2f}x   {versus:22s}'
              f'val_acc {history[-1, 4]:.4f}   {peak_share(seconds, options)}')
    if kept:
        again, history = results['the source loop, freed memory kept']
        best = min(results[name][0] for name, _ in rows)
        print(f"  {'the source loop, freed memory kept':34s} {again:6.2f} s/epoch   vs source "
              f"{source / again:4.2f}x   {'':22s}val_acc {history[-1, 4]:.4f}   {peak_share(again, {})}   "
              f"(the best fit row: {best:.2f} s/epoch, {again / best:4.2f}x this)")
    # DeviceLoader's one-off decode: all images at once (the lessons' transform) against image by image (any
    # other
    # transform; a no-op Lambda stands in for one here)
    by_item = transforms.Compose([*make_transform().transforms, transforms.Lambda(lambda x: x)])
    slow_set = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, limit=a.n_train,
                            transform=by_item)
    at_once = min(_timed(lambda: DeviceLoader(train_set, a.batch_size, device='cpu')) for _ in range(3))
    item_by_item = min(_timed(lambda: DeviceLoader(slow_set, a.batch_size, device='cpu')) for _ in range(3))
    print(f'DeviceLoader decode of {a.n_train} images: at once {at_once * 1000:.0f} ms, image by image '
          f'{item_by_item * 1000:.0f} ms ({item_by_item / at_once:.0f}x)')


if __name__ == '__main__':
    main()
