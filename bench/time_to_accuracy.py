#!/usr/bin/env python
"""A recipe's training time and final test accuracy on real Fashion-MNIST, and when each epoch's test
accuracy first passed 92.9%, 94% and 95%: lesson 3b's `--recipe fast` (against the source's recipe: batch 16,
per-image transforms, Adam 1e-3, plateau, timed for a few epochs and extrapolated to the 42 epochs the source
needed), lesson 7's `resnet`, lesson 7b's `speedrun94` and `best`. Also the run's FLOPs and the share of the
CPU's matrix-product peak (measured in the same process) it reached.

Run by hand (never a timed test):  python bench/time_to_accuracy.py [--recipe NAME] [--data-root DIR]
    [--threads 2] [--amp off] [--epochs N] [--seed N] [--seeds N] [--source-epochs 2 | --skip-source]
The recipe's clock covers everything `cnn-course train --recipe NAME` does before and during training: reading
and decoding the data, building the model, and every epoch with its validation pass. After each epoch the
clock is paused while the test set is scored (a measurement, not part of the recipe). The final accuracy is
the last epoch's (with the recipe's test-time augmentation, if it has one, scored after the clock stops).
Needs the real Fashion-MNIST (Debian's dataset-fashion-mnist, or --data-root holding it).
"""
from __future__ import annotations
import argparse, contextlib, copy, io, os, platform, statistics, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.data import load_dataset, train_val_split
from cnn_course.runs import make_run, recipe, score_run
from cnn_course.settings import RECIPES
from cnn_course.speedrun import step_flops
from cnn_course.train import Callback, evaluate, fit, resolve_amp
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the source's loop, line for line (see fit_speed.py)
from fit_speed import source_fashion_cnn, source_fit, source_transform
from amp_speed import matmul_peak

MARKS = (0.929, 0.94, 0.95)  # the source's best (lesson 3), 94% and 95%
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


def run_flops(run, cfg) -> float:
    """FLOPs of the whole run: every training step (forward and backward) and every validation pass
    (forward), counted by PyTorch on a copy of the model."""
    net = copy.deepcopy(run.net).float()
    shape = tuple(run.train_loader.x.shape[1:])
    per_image = step_flops(net, torch.randn(8, *shape)) / 8
    per_val_image = step_flops(net.eval(), torch.randn(8, *shape), train=False) / 8
    loader = run.train_loader  # every picture once an epoch, less a dropped last batch of one
    n_train = len(loader.y) - (len(loader.y) % loader.batch_size if loader.drop_last else 0)
    return cfg.epochs * (n_train * per_image + len(run.val_loader.y) * per_val_image)


def train_recipe(a, seed) -> dict:
    """Train `--recipe NAME` (with --amp/--epochs if given) with `seed`: the clock's points, the setup
    seconds, the final scores, the FLOPs."""
    settings = dict(data_root=a.data_root, download=False, device='cpu')
    if a.amp is not None: settings['amp'] = None if a.amp == 'off' else a.amp
    if a.epochs is not None: settings['epochs'] = a.epochs
    if seed is not None: settings['seed'] = seed
    cfg = recipe(a.recipe, **settings)
    print(f'{a.recipe} recipe: {cfg}', flush=True)
    start = time.perf_counter()
    torch_seed(cfg.seed)
    run = make_run(cfg)
    setup = time.perf_counter() - start
    amp_dtype = resolve_amp(cfg.amp, run.device)[0]
    clock = TestClock(run.test_loader, amp_dtype, cfg.channels_last, start)
    fit(run.net, run.optimizer, run.criterion, cfg.epochs, run.train_loader, run.val_loader, run.device,
        np.zeros((0, 5)), progress=False, scheduler=run.scheduler,
        callbacks=[*run.callbacks.values(), clock], amp=cfg.amp, channels_last=cfg.channels_last)
    scores = score_run(run) if cfg.tta else None  # the recipe's own final score, with its views
    return dict(seed=cfg.seed, points=clock.points, setup=setup, scores=scores, flops=run_flops(run, cfg),
                bf16=amp_dtype is torch.bfloat16)


def report(a, r) -> float:
    """Print one run's figures; return its final test accuracy (the recipe's own: with TTA if it has it),
    training seconds and the clock's points."""
    points, setup = r['points'], r['setup']
    seconds, plain = points[-1]
    final = r['scores']['test_accuracy'] if r['scores'] else plain
    print(f"\n{a.recipe} recipe, seed {r['seed']}: setup (read, decode, build) {setup:.1f} s; {len(points)} "
          f'epochs in {seconds:.1f} s ({seconds / 60:.2f} min; {(seconds - setup) / len(points):.1f} s/epoch '
          f'with validation); final test accuracy {plain:.4f}' +
          (f', with its test-time augmentation {final:.4f}' if r['scores'] else ''))
    for mark in MARKS:
        reached = next(((s, i + 1) for i, (s, acc) in enumerate(points) if acc >= mark), None)
        print(f'  first epoch at {mark:.1%}: ' + (f'epoch {reached[1]}, after {reached[0]:.0f} s'
                                                 if reached else 'not reached'))
    peak = a.peaks['bf16' if r['bf16'] else 'float32']
    rate = r['flops'] / seconds / 1e9
    print(f"  {r['flops'] / 1e12:.0f} TFLOPs in the run: {rate:.0f} GFLOP/s over the whole clock, "
          f"{rate / peak:.0%} of the {'bf16' if r['bf16'] else 'float32'} matrix-product peak "
          f'({peak:.0f} GFLOP/s)')
    return final, seconds, points


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
    p.add_argument('--recipe', choices=tuple(RECIPES), default='fast',
                   help='the recipe to time (default: fast)')
    p.add_argument('--data-root', default='./data')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all cores)')
    p.add_argument('--amp', choices=('off', 'auto', 'bf16', 'fp16'), default=None,
                   help="replace the recipe's mixed precision ('auto'), e.g. off to compare float32")
    p.add_argument('--epochs', type=int, default=None, help="replace the recipe's epochs")
    p.add_argument('--seed', type=int, default=None, help="replace the recipe's seed (its weights, shuffles, "
                   "dropout and augmentation; the validation split stays), to see how far the result moves "
                   "between seeds")
    p.add_argument('--seeds', type=int, default=1, help='train N runs, with seeds --seed (default 1), '
                   '--seed + 1, ...; print each and their mean')
    p.add_argument('--source-epochs', type=int, default=2, help="epochs of the source's recipe to time")
    p.add_argument('--skip-source', action='store_true', help="time the fast recipe only")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    flags = open('/proc/cpuinfo').read() if os.path.exists('/proc/cpuinfo') else ''
    cpu = 'native bf16' if ('avx512_bf16' in flags or 'amx_bf16' in flags) else 'no native bf16'
    print(f'{platform.processor() or platform.machine()} ({cpu}), {os.cpu_count()} cores, torch '
          f'{torch.__version__}, {torch.get_num_threads()} threads, {time.strftime("%Y-%m-%d")}', flush=True)
    a.peaks = {'float32': matmul_peak(torch.float32), 'bf16': matmul_peak(torch.bfloat16)}
    seeds = [a.seed] if a.seeds == 1 else [(a.seed or 1) + i for i in range(a.seeds)]
    results = [report(a, train_recipe(a, seed)) for seed in seeds]
    if len(results) > 1:
        accs, times = [r[0] for r in results], [r[1] for r in results]
        print(f'\n{a.recipe}, {len(results)} seeds: final test accuracy mean {statistics.mean(accs):.4f} '
              f'(min {min(accs):.4f}, max {max(accs):.4f}); training time mean '
              f'{statistics.mean(times):.0f} s (min {min(times):.0f}, max {max(times):.0f})')
    if a.skip_source or a.recipe != 'fast' or len(results) > 1: return
    per_epoch, accs = source_recipe(a)
    estimate = per_epoch * SOURCE_EPOCHS
    reached = next((s for s, acc in results[0][2] if acc >= MARKS[0]), None)
    print(f"\nsource recipe: {per_epoch:.1f} s/epoch over {a.source_epochs} epochs (test accuracy after "
          f"them: {', '.join(f'{acc:.4f}' for acc in accs)}); extrapolated to the {SOURCE_EPOCHS} epochs the "
          "source needed: "
          f'{estimate:.0f} s ({estimate / 60:.1f} min), an extrapolation, not a measurement')
    if reached:
        print(f'ratio (source extrapolated / fast measured to {MARKS[0]:.1%}): {estimate / reached:.1f}x')


if __name__ == '__main__':
    main()
