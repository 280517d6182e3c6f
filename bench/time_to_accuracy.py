#!/usr/bin/env python
"""Seconds until a recipe first reaches its target test accuracy on real Fashion-MNIST: lesson 3's `--recipe
fast` (target 92.9%, the source's best) against the source's recipe (batch 16, per-image transforms, Adam
1e-3, plateau), the latter timed for a few epochs and extrapolated to the 42 epochs the source needed; or
lesson 7's `--recipe resnet` (target 94.0%), also scored at the end with test-time augmentation.

Run by hand (never a timed test):  python bench/time_to_accuracy.py [--recipe fast|resnet] [--data-root DIR]
    [--threads 2] [--amp off] [--epochs N] [--seed N] [--source-epochs 2 | --skip-source]
The recipe's clock covers everything `cnn-course train --recipe NAME` does before and during training: reading
and decoding the data, building the model, and every epoch with its validation pass. After each epoch the
clock is paused while the test set is scored (a measurement, not part of the recipe). Needs the real
Fashion-MNIST (Debian's dataset-fashion-mnist, or --data-root holding it, decompressed or not).
"""
from __future__ import annotations
import argparse, contextlib, io, os, platform, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.data import load_dataset, train_val_split, tta_views
from cnn_course.runs import make_run, recipe
from cnn_course.train import Callback, evaluate, fit, resolve_amp
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the source's loop, line for line (see fit_speed.py)
from fit_speed import source_fashion_cnn, source_fit, source_transform

TARGETS = {'fast': 0.929,   # the source's best test accuracy (lesson 3)
           'resnet': 0.94}  # lesson 7's first mark (its recipe's final goal: 94.5%)
SOURCE_EPOCHS = 42     # the epoch at which the source stopped early with it


class TestClock(Callback):
    """After each epoch: pause the clock, score the test set, record (seconds of training so far, test
    accuracy)."""
    order = 100  # after every other callback

    def __init__(self, test_loader, amp_dtype, channels_last, start):
        self.test_loader, self.amp_dtype, self.channels_last = test_loader, amp_dtype, channels_last
        self.start, self.paused, self.points = start, 0.0, []

    def after_epoch(self, run):
        stop = time.perf_counter()
        _, acc = evaluate(run.net, self.test_loader, nn.CrossEntropyLoss(), 'cpu', amp_dtype=self.amp_dtype,
                          channels_last=self.channels_last)
        self.points.append((stop - self.start - self.paused, acc))
        print(f'  epoch {len(self.points):2d}: test accuracy {acc:.4f} after {self.points[-1][0]:6.1f} s',
              flush=True)
        self.paused += time.perf_counter() - stop


def fast_recipe(a) -> tuple[list, float, np.ndarray, object]:
    """Train `--recipe NAME` (with --amp/--epochs if given); return the clock's points, the setup seconds, the
    history, the run."""
    settings = dict(data_root=a.data_root, download=False, device='cpu')
    if a.amp is not None: settings['amp'] = None if a.amp == 'off' else a.amp
    if a.epochs is not None: settings['epochs'] = a.epochs
    if a.seed is not None: settings['seed'] = a.seed
    cfg = recipe(a.recipe, **settings)
    print(f'{a.recipe} recipe: {cfg}', flush=True)
    start = time.perf_counter()
    torch_seed(cfg.seed)
    run = make_run(cfg)
    setup = time.perf_counter() - start
    clock = TestClock(run.test_loader, resolve_amp(cfg.amp, run.device)[0], cfg.channels_last, start)
    history = fit(run.net, run.optimizer, run.criterion, cfg.epochs, run.train_loader, run.val_loader,
                  run.device, np.zeros((0, 5)), progress=False, scheduler=run.scheduler,
                  callbacks=[*run.callbacks.values(), clock], amp=cfg.amp, channels_last=cfg.channels_last)
    return clock.points, setup, history, run


def source_recipe(a) -> tuple[float, list]:
    """Seconds per epoch of the source's recipe (its loop, its layers) after a warm-up epoch; and its test
    accuracies."""
    transform = source_transform(False)
    full = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, transform=transform)
    test = load_dataset('fashion-mnist', train=False, root=a.data_root, download=False, transform=transform)
    # 50,000 to train on, 10,000 to validate, as in lesson 3
    train_set, val_set = train_val_split(full, 1/6, 123)
    train = DataLoader(train_set, batch_size=16, shuffle=True)
    val = DataLoader(val_set, batch_size=500)
    test_loader = DataLoader(test, batch_size=500)
    with contextlib.redirect_stdout(io.StringIO()):
        torch_seed(123)
        warm = source_fashion_cnn()
        source_fit(warm, optim.Adam(warm.parameters(), lr=1e-3), nn.CrossEntropyLoss(), 1, val, val,
                   torch.device('cpu'), np.zeros((0, 5)))  # a warm-up pass over 10,000 images, not timed
    torch_seed(123)
    net = source_fashion_cnn()
    opt = optim.Adam(net.parameters(), lr=1e-3)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(opt, mode='min', factor=0.1, patience=4)
    history, seconds, accs = np.zeros((0, 5)), 0.0, []
    for epoch in range(a.source_epochs):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            history = source_fit(net, opt, nn.CrossEntropyLoss(), 1, train, val, torch.device('cpu'), history)
        scheduler.step(history[-1, 3])
        seconds += time.perf_counter() - start
        accs.append(evaluate(net, test_loader, nn.CrossEntropyLoss(), 'cpu')[1])
        print(f'  source epoch {epoch + 1}: {seconds / (epoch + 1):.1f} s/epoch so far, test accuracy '
              f'{accs[-1]:.4f}',
              flush=True)
    return seconds / a.source_epochs, accs


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipe', choices=tuple(TARGETS), default='fast',
                   help='the recipe to time (default: fast)')
    p.add_argument('--data-root', default='./data')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all cores)')
    p.add_argument('--amp', choices=('off', 'auto', 'bf16', 'fp16'), default=None,
                   help="replace the recipe's mixed precision ('auto'), e.g. off to compare float32")
    p.add_argument('--epochs', type=int, default=None, help="replace the recipe's epochs")
    p.add_argument('--seed', type=int, default=None, help="replace the recipe's seed (its weights, shuffles, "
                   "dropout and augmentation; the validation split stays), to see how far the result moves "
                   "between seeds")
    p.add_argument('--source-epochs', type=int, default=2, help="epochs of the source's recipe to time")
    p.add_argument('--skip-source', action='store_true', help="time the fast recipe only")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, {time.strftime("%Y-%m-%d")}', flush=True)

    points, setup, history, run = fast_recipe(a)
    target = TARGETS[a.recipe]
    reached = next(((s, i + 1) for i, (s, acc) in enumerate(points) if acc >= target), None)
    print(f'\n{a.recipe} recipe: setup (read, decode, build) {setup:.1f} s; {len(points)} epochs in '
          f'{points[-1][0]:.1f} s ({(points[-1][0] - setup) / len(points):.1f} s/epoch with validation); '
          f'final test accuracy {points[-1][1]:.4f}, best {max(acc for _, acc in points):.4f}')
    if reached:
        print(f'time to {target:.1%}: {reached[0]:.0f} s ({reached[0] / 60:.1f} min), at epoch {reached[1]}')
    else: print(f'time to {target:.1%}: not reached in {len(points)} epochs')
    print(f'final test accuracy >= {target:.1%}: {"yes" if points[-1][1] >= target else "no"}')
    if a.recipe == 'resnet':
        start = time.perf_counter()
        _, tta_acc = evaluate(run.net, run.test_loader, nn.CrossEntropyLoss(), 'cpu', tta=tta_views(),
                              amp_dtype=resolve_amp(run.config.amp, run.device)[0],
                              channels_last=run.config.channels_last)
        print(f'final test accuracy with test-time augmentation ({len(tta_views())} views): {tta_acc:.4f} '
              f'({time.perf_counter() - start:.1f} s to score)')
    if a.skip_source or a.recipe != 'fast': return
    per_epoch, accs = source_recipe(a)
    estimate = per_epoch * SOURCE_EPOCHS
    print(f"\nsource recipe: {per_epoch:.1f} s/epoch over {a.source_epochs} epochs (test accuracy after "
          f"them: {', '.join(f'{acc:.4f}' for acc in accs)}); extrapolated to the {SOURCE_EPOCHS} epochs the "
          "source needed: "
          f'{estimate:.0f} s ({estimate / 60:.1f} min), an extrapolation, not a measurement')
    if reached: print(f'ratio (source extrapolated / fast measured): {estimate / reached[0]:.1f}x')


if __name__ == '__main__':
    main()
