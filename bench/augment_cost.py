#!/usr/bin/env python
"""What batch augmentation (lesson 7's `BatchAugment` in a `DeviceLoader`) adds to an epoch of lesson 7's
recipe.

Run by hand (never a timed test): `python bench/augment_cost.py [--data-root DIR] [--threads 2] [--images
10000] [--repeat 3]`. The same ResNet, the same pictures and the recipe's training step (AdamW, label
smoothing, bf16 where native, channels-last), one epoch with `augment=None` and one with the recipe's
augmentation (`recipe('resnet')`: shifts of up to 2 pixels, a rectangle erased in half of the pictures),
alternated `--repeat` times after a warm-up epoch. It prints each pair and the ratio of the medians, measured
within one run, with the CPU it ran on.
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import torch
import torch.nn as nn
from cnn_course.core import get_device, torch_seed
from cnn_course.data import BatchAugment, DeviceLoader, load_dataset
from cnn_course.models import ResNet
from cnn_course.runs import recipe
from cnn_course.train import fit


def epoch_seconds(train_set, device, augment, cfg) -> float:
    "Seconds for one training epoch (no validation) of a fresh ResNet with the recipe's step."
    loader = DeviceLoader(train_set, batch_size=cfg.batch_size, shuffle=True, device=device, augment=augment)
    torch_seed(cfg.seed)
    net = ResNet().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = time.perf_counter()
    fit(net, opt, nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), 1, loader, None, device,
        np.zeros((0, 5)), progress=False, amp=cfg.amp, channels_last=cfg.channels_last)
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data-root', default='./data')
    p.add_argument('--device', default=None)
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all cores)')
    p.add_argument('--images', type=int, default=10_000, help='training pictures per epoch')
    p.add_argument('--repeat', type=int, default=3, help='timed pairs of epochs')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device) if a.device else get_device()
    cfg = recipe('resnet')
    augment = BatchAugment(shift=cfg.shift, flip=cfg.flip, erase=cfg.erase)
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, {device}, {time.strftime("%Y-%m-%d")}; {augment}', flush=True)
    train_set = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, limit=a.images)
    epoch_seconds(train_set, device, None, cfg)  # warm-up: oneDNN picks its kernels
    plain, augmented = [], []
    for i in range(a.repeat):
        plain.append(epoch_seconds(train_set, device, None, cfg))
        augmented.append(epoch_seconds(train_set, device, augment, cfg))
        print(f'  pair {i + 1}: {plain[-1]:.2f} s without augmentation, {augmented[-1]:.2f} s with it',
              flush=True)
    ratio = statistics.median(augmented) / statistics.median(plain)
    print(f'median epoch of {a.images:,} pictures: {statistics.median(plain):.2f} s without, '
          f'{statistics.median(augmented):.2f} s with augmentation: {ratio - 1:+.1%}')


if __name__ == '__main__':
    main()
