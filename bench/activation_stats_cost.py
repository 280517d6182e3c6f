#!/usr/bin/env python
"""What `ActivationStats` costs: epochs of lesson 3's model with and without it, alternating, in one run.

    python bench/activation_stats_cost.py [--images 10000] [--repeat 3] [--threads 2] [--amp auto] [--device
    cpu]

Trains lesson 3's `FashionCNN` with its fast recipe's settings (Adam, batches of 128, channels-last, `amp`)
on the first IMAGES real Fashion-MNIST training images, one epoch at a time, alternately without and with an
`ActivationStats` callback (every ReLU watched, 16 images of each batch), after an untimed warm-up epoch of
each. Prints the median epoch time of each, and the callback's cost as a share of an epoch: the median ratio
of each epoch with it to the epoch without it just before (pairs side by side are less affected by the
machine's drifting speed).
"""
import argparse, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=10_000, help='training images per epoch')
    p.add_argument('--repeat', type=int, default=3, help='timed epochs of each kind')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: PyTorch\'s)')
    p.add_argument('--amp', default='auto', help="fit's amp: 'auto', 'bf16', 'fp16' or 'none'")
    p.add_argument('--device', default=None, help='cpu or cuda (default: the best here)')
    a = p.parse_args()
    import numpy as np, torch
    from torch import nn, optim
    from cnn_course.core import get_device, torch_seed
    from cnn_course.data import DeviceLoader, load_dataset
    from cnn_course.hooks import ActivationStats
    from cnn_course.models import FashionCNN
    from cnn_course.train import fit, resolve_amp
    if a.threads: torch.set_num_threads(a.threads)
    device = a.device or get_device()
    amp = None if a.amp == 'none' else a.amp
    data = load_dataset('fashion-mnist', train=True, limit=a.images)
    loader = DeviceLoader(data, batch_size=128, shuffle=True, device=device)
    torch_seed()
    net = FashionCNN().to(device)
    opt = optim.Adam(net.parameters(), lr=1e-3)
    history = np.zeros((0, 5))
    def epoch(callbacks):
        nonlocal history
        if str(device).startswith('cuda'): torch.cuda.synchronize()
        start = time.perf_counter()
        history = fit(net, opt, nn.CrossEntropyLoss(), 1, loader, None, device, history, progress=False,
                      callbacks=callbacks, amp=amp, channels_last=True)
        if str(device).startswith('cuda'): torch.cuda.synchronize()
        return time.perf_counter() - start
    stats = ActivationStats()
    epoch([]); epoch([stats])  # warm-up, untimed
    plain, watched = [], []
    for _ in range(a.repeat):
        plain.append(epoch([]))
        watched.append(epoch([stats]))
    p_med, w_med = statistics.median(plain), statistics.median(watched)
    print(f'device {device}, amp {resolve_amp(amp, device)[1]}, {torch.get_num_threads()} threads, '
          f'{a.images} images, batches of 128, channels-last')
    print(f'without ActivationStats: {p_med:.2f} s/epoch  (epochs: {", ".join(f"{t:.2f}" for t in plain)})')
    print(f'with ActivationStats:    {w_med:.2f} s/epoch  (epochs: {", ".join(f"{t:.2f}" for t in watched)})')
    # each epoch with the callback against the plain epoch just before it: the machine's speed drifts less in
    # between
    paired = statistics.median(w / p for p, w in zip(plain, watched))
    print(f'cost: {100 * (paired - 1):+.1f}% of an epoch (median of {a.repeat} back-to-back pairs; '
          f'{100 * (w_med / p_med - 1):+.1f}% from the medians); {len(stats.names)} layers watched, '
          f'{stats.means.shape[0]} batches recorded')


if __name__ == '__main__':
    main()
