#!/usr/bin/env python
"""Images per second of lesson 3's model trained with `fit` in one process against N processes under torchrun
(DistributedDataParallel), the same global batch, in one run of this script.

Run by hand (never a timed test):
    python bench/ddp_scaling.py                       # CPU: 1 process x all cores' threads vs 2 processes x
    (cores/2) python bench/ddp_scaling.py --device cuda --nproc 4   # a 4-GPU machine: 1 GPU vs 4 GPUs
On a CPU the honest comparison keeps processes x threads = cores, so both ways have the same cores to work
with. Needs the real Fashion-MNIST (Debian's dataset-fashion-mnist, or --data-root holding it).
"""
from __future__ import annotations
import argparse, contextlib, io, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))


def child(a):
    """One process of a measurement: train, time `--epochs` epochs after a warm-up epoch, rank 0 writes the
    result."""
    import numpy as np
    import torch
    import torch.nn as nn
    from cnn_course.core import torch_seed
    from cnn_course.data import DeviceLoader, load_dataset
    from cnn_course.distributed import dist_info, init_distributed, is_main_process
    from cnn_course.models import FashionCNN
    from cnn_course.train import fit
    device = init_distributed(a.device)
    rank, world, _ = dist_info()
    torch_seed(123)
    data = load_dataset('fashion-mnist', train=True, root=a.data_root, download=False, limit=a.n_train)
    loader = DeviceLoader(data, a.batch_size, shuffle=True, device=device)
    net = FashionCNN().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    options = dict(progress=False, amp=None if a.amp == 'off' else a.amp, channels_last=True)
    with contextlib.redirect_stdout(io.StringIO()):
        fit(net, opt, nn.CrossEntropyLoss(), 1, loader, None, device, np.zeros((0, 5)), **options)  # warm-up
        if device.type == 'cuda': torch.cuda.synchronize()
        start = time.perf_counter()
        fit(net, opt, nn.CrossEntropyLoss(), a.epochs, loader, None, device, np.zeros((0, 5)), **options)
        if device.type == 'cuda': torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if is_main_process():
        Path(a.out).write_text(json.dumps({'world_size': world, 'seconds': seconds,
                                           'threads': torch.get_num_threads(),
                                           'images_per_s': len(loader.y) * a.epochs / seconds,
                                           'device': str(device)}))


def measure(a, nproc, threads) -> dict:
    "Run this script as one process (nproc=1) or under torchrun; return what rank 0 wrote."
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'result.json'
        args = ['--child', '--out', str(out), '--device', a.device, '--data-root', a.data_root, '--n-train',
                str(a.n_train), '--epochs', str(a.epochs), '--batch-size', str(a.batch_size), '--amp', a.amp]
        runner = ([] if nproc == 1
                  else ['-m', 'torch.distributed.run', '--standalone', f'--nproc-per-node={nproc}'])
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
        done = subprocess.run([sys.executable, *runner, str(HERE), *args], env=env, capture_output=True,
                              text=True)
        if done.returncode:
            raise SystemExit(f'the {nproc}-process run failed:\n{done.stdout}\n{done.stderr[-4000:]}')
        return json.loads(out.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cpu', help="'cpu' (gloo) or 'cuda' (NCCL, one GPU per process)")
    p.add_argument('--nproc', type=int, default=2, help='processes of the parallel run')
    p.add_argument('--data-root', default='./data')
    p.add_argument('--n-train', type=int, default=10_000)
    p.add_argument('--epochs', type=int, default=2, help='timed epochs, after one warm-up epoch')
    p.add_argument('--batch-size', type=int, default=128, help='the global batch (split over the processes)')
    p.add_argument('--amp', default='auto', help="fit's amp: 'auto', 'bf16', 'fp16' or 'off'")
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--out', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child: return child(a)
    cores = os.cpu_count() or 1
    # CPU: the same cores both ways; GPU: the threads only feed the GPUs
    single_threads, parallel_threads = (cores, max(1, cores // a.nproc)) if a.device == 'cpu' else (1, 1)
    print(f'{platform.processor() or platform.machine()}, {cores} cores, device {a.device}, '
          f'{time.strftime("%Y-%m-%d")}')
    print(f'lesson 3 FashionCNN, real Fashion-MNIST, {a.n_train} images, global batch {a.batch_size}, '
          f'amp={a.amp}, channels_last, {a.epochs} timed epochs after a warm-up epoch, no validation pass')
    one = measure(a, 1, single_threads)
    many = measure(a, a.nproc, parallel_threads)
    print(f"  1 process  x {one['threads']} threads: {one['images_per_s']:7.0f} images/s ({one['device']})")
    print(f"  {a.nproc} processes x {many['threads']} threads: {many['images_per_s']:7.0f} images/s "
          f"({many['images_per_s'] / one['images_per_s']:.2f}x the single process)")
    from cnn_course.models import FashionCNN
    grad_bytes = sum(q.numel() for q in FashionCNN().parameters()) * 4
    steps = -(-a.n_train // a.batch_size)
    sent = 2 * (a.nproc - 1) / a.nproc * grad_bytes
    print(f'  ring all-reduce: {sent / 1e6:.2f} MB sent per process per step, {steps} steps per epoch '
          f'({sent * steps / 1e6:.0f} MB per epoch)')


if __name__ == '__main__':
    main()
