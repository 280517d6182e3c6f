#!/usr/bin/env python
"""What two changes gave lesson 3's training step on the CPU: `FastDropout`'s mask as numbers in the input's
memory layout (against the bool mask it used before), and `fit`'s allocator setting (glibc keeps freed
memory).

Run by hand (never a timed test):  python bench/step_parts.py [--batch-size 128] [--threads 2] [--children 4]
One step is the fast recipe's (lesson 3's FashionCNN, channels-last, `amp='auto'`, AdamW, label smoothing
0.1) on one random batch. Child processes alternate between glibc's default allocator and the setting `fit`
makes (it cannot be undone within a process); inside each, steps with the two dropout layers alternate,
`--rounds` times. Prints the median milliseconds per step of each of the four combinations, the page faults
per step, and the ratios, all from this one run. With `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` it
measures what an AVX2-only CPU runs.
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.models import FashionCNN, FastDropout
from cnn_course.train import resolve_amp, _minor_page_faults, _reuse_freed_memory


class BoolMaskDropout(FastDropout):
    "`FastDropout` as it was before: the same random bits, kept as a bool mask in the NCHW order."
    def forward(self, x):
        if not self.training or self.p == 0 or self.inplace or x.device.type != 'cpu':
            return F.dropout(x, self.p, self.training, self.inplace)
        n, dropped = x.numel(), round(self.p * 65536)
        bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        keep = bits.view(x.shape) >= dropped - 32768
        return x * keep * (65536 / (65536 - dropped))


def with_bool_masks(net):
    for module in list(net.modules()):
        for name, child in module.named_children():
            if type(child) is FastDropout: setattr(module, name, BoolMaskDropout(child.p))
    return net


def child(a) -> dict:
    "Time both dropout layers, alternating, with this process's allocator; the result as a dict."
    if a.threads: torch.set_num_threads(a.threads)
    kept = _reuse_freed_memory() if a.child == 'kept' else False
    amp_dtype, _ = resolve_amp('auto', 'cpu')
    torch_seed(0)
    x = torch.randn(a.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch_size,))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    setups = {}
    for name, make in (('bool mask', lambda: with_bool_masks(FashionCNN())), ('number mask', FashionCNN)):
        torch_seed(1)
        net = make().to(memory_format=torch.channels_last).train()
        setups[name] = (net, torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=0.05))
    def step(net, opt):
        with torch.autocast('cpu', amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = criterion(net(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    # the same numbers: one step of each from the same weights and random numbers gives the same loss
    losses = []
    for net, _ in setups.values():
        torch.manual_seed(2)
        with torch.autocast('cpu', amp_dtype or torch.float32, enabled=amp_dtype is not None):
            losses.append(criterion(net(x), y).item())
    for net, opt in setups.values():
        for _ in range(3): step(net, opt)  # warm-up
    ms, faults = {k: [] for k in setups}, {k: 0 for k in setups}
    for _ in range(a.rounds):
        for name, (net, opt) in setups.items():
            before, start = _minor_page_faults(), time.perf_counter()
            for _ in range(a.steps): step(net, opt)
            ms[name].append((time.perf_counter() - start) / a.steps * 1000)
            faults[name] += _minor_page_faults() - before
    return {'allocator': 'kept' if kept else 'default', 'same loss': losses[0] == losses[1],
            'ms': {k: statistics.median(v) for k, v in ms.items()},
            'faults': {k: v / (a.rounds * a.steps) for k, v in faults.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--steps', type=int, default=10, help='steps per timed block')
    p.add_argument('--rounds', type=int, default=6, help='timed blocks per dropout layer and child')
    p.add_argument('--children', type=int, default=4, help='child processes, alternating default / kept '
                                                           'allocator')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--child', choices=('default', 'kept'), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a))); return
    if platform.libc_ver()[0] != 'glibc': print('not glibc: the allocator rows are the same setting')
    _, said = resolve_amp('auto', 'cpu')
    print(f'{platform.processor() or platform.machine()}, PyTorch kernels '
          f'{torch.backends.cpu.get_cpu_capability()}, '
          f"torch {torch.__version__}; amp='auto' here: {said}; batch {a.batch_size}")
    runs = []
    for i in range(a.children):
        kind = ('default', 'kept')[i % 2]
        args = [sys.executable, os.path.abspath(__file__), '--child', kind, '--batch-size', str(a.batch_size),
                '--steps', str(a.steps), '--rounds', str(a.rounds)] + (['--threads', str(a.threads)]
                                                                       if a.threads else [])
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode: sys.exit(r.stderr)
        runs.append(json.loads(r.stdout.splitlines()[-1]))
    assert all(r['same loss'] for r in runs), 'the two dropout layers gave different losses'
    table = {}
    for alloc in ('default', 'kept'):
        mine = [r for r in runs if r['allocator'] == alloc]
        if not mine: continue
        for layer in ('bool mask', 'number mask'):
            table[alloc, layer] = (statistics.median(r['ms'][layer] for r in mine),
                                   statistics.median(r['faults'][layer] for r in mine))
    base = table['default', 'bool mask'][0]
    print('the two dropout layers give the same loss from the same weights and random numbers: yes')
    for (alloc, layer), (ms, faults) in table.items():
        print(f'  {layer:12s} allocator {alloc:8s} {ms:6.1f} ms/step   {faults:8.0f} page faults/step   '
              f'{base / ms:4.2f}x the bool mask with the default allocator')
    if ('kept', 'number mask') in table:
        d, k = table['default', 'number mask'][0], table['kept', 'number mask'][0]
        print(f'the number mask alone: {base / d:4.2f}x; keeping freed memory alone (with it): '
              f'{d / k:4.2f}x; both: {base / k:4.2f}x')


if __name__ == '__main__':
    main()
