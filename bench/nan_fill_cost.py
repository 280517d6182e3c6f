#!/usr/bin/env python
"""What deterministic mode's NaN fill of new tensors cost lesson 3's training step on the CPU, which
`torch_seed` switches off (`torch.utils.deterministic.fill_uninitialized_memory = False`).

Run by hand (never a timed test):  python bench/nan_fill_cost.py [--batch-size 128] [--threads 2] [--rounds
10] `torch.use_deterministic_algorithms(True)` (which `torch_seed` calls) also fills every tensor PyTorch
allocates without initialising it with NaN, unless that setting is off. One process, as `fit` runs on the CPU
(freed memory kept): lesson 3b's fast-recipe step (FashionCNN, channels-last, `amp='auto'`, AdamW, label
smoothing 0.1) on one random batch, and the same model in float32 in PyTorch's default memory layout with
Adam (the setting of the source's loop), in blocks of `--steps` steps that alternate the fill on and off
`--rounds` times. Checks that a step from the same weights and random numbers gives the same loss either way,
and prints the median milliseconds per step with and without the fill and their ratio, all from this one run.
With `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` it measures what an AVX2-only CPU runs (float32).
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time

import torch
import torch.nn as nn
import torch.utils.deterministic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.models import FashionCNN
from cnn_course.train import resolve_amp, _reuse_freed_memory


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--steps', type=int, default=10, help='steps per timed block')
    p.add_argument('--rounds', type=int, default=10, help='timed blocks per setting, fill on and off '
                                                          'alternating')
    p.add_argument('--threads', type=int, default=None)
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    _reuse_freed_memory()  # as fit does on the CPU
    amp_dtype, said = resolve_amp('auto', 'cpu')
    print(f'{platform.processor() or platform.machine()}, PyTorch kernels '
          f'{torch.backends.cpu.get_cpu_capability()}, '
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; amp='auto' here: {said}; batch "
          f"{a.batch_size}")
    torch_seed(0)  # deterministic mode on, as in every lesson
    x = torch.randn(a.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (a.batch_size,))
    setups = {}
    for name, fast in (("the fast recipe's step (channels-last, amp='auto', AdamW)", True),
                       ('float32, default layout, Adam (as the source trains)', False)):
        torch_seed(1)
        net = FashionCNN().train()
        if fast: net = net.to(memory_format=torch.channels_last)
        opt = (torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=0.05) if fast
               else torch.optim.Adam(net.parameters(), lr=1e-3))
        criterion = nn.CrossEntropyLoss(label_smoothing=0.1 if fast else 0.0)
        inputs = x.contiguous(memory_format=torch.channels_last) if fast else x
        setups[name] = (net, opt, criterion, inputs, amp_dtype if fast else None)

    def loss_of(net, criterion, inputs, dtype):
        with torch.autocast('cpu', dtype or torch.float32, enabled=dtype is not None):
            return criterion(net(inputs), y)

    def step(net, opt, criterion, inputs, dtype):
        loss = loss_of(net, criterion, inputs, dtype)
        opt.zero_grad(); loss.backward(); opt.step()

    for name, (net, opt, criterion, inputs, dtype) in setups.items():
        # the same numbers: one step from the same weights and random numbers gives the same loss and
        # gradients
        results = []
        for fill in (True, False):
            torch.utils.deterministic.fill_uninitialized_memory = fill
            torch.manual_seed(2)
            net.zero_grad()
            loss = loss_of(net, criterion, inputs, dtype)
            loss.backward()
            results.append([loss.detach()] + [q.grad.clone() for q in net.parameters()])
        net.zero_grad()
        same = all(torch.equal(u, v) for u, v in zip(*results))
        assert same, f'{name}: the fill changed the loss or the gradients'
        for _ in range(3): step(net, opt, criterion, inputs, dtype)  # warm-up
        ms = {True: [], False: []}
        for _ in range(a.rounds):
            for fill in (True, False):
                torch.utils.deterministic.fill_uninitialized_memory = fill
                start = time.perf_counter()
                for _ in range(a.steps): step(net, opt, criterion, inputs, dtype)
                ms[fill].append((time.perf_counter() - start) / a.steps * 1000)
        with_fill, without = statistics.median(ms[True]), statistics.median(ms[False])
        print(f'  {name}: the same loss and gradients with and without the fill: yes; '
              f'{with_fill:5.1f} ms/step with the NaN fill, {without:5.1f} without: '
              f'{with_fill / without:4.2f}x')
    torch.utils.deterministic.fill_uninitialized_memory = False


if __name__ == '__main__':
    main()
