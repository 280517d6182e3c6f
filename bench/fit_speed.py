#!/usr/bin/env python
"""Time the source's training loop against `cnn_course.train.fit` + `DeviceLoader` on the same model and data.

Run by hand (never a timed test):  python bench/fit_speed.py [--models fc,cnn] [--device cpu] [--breakdown]
See bench/README.md for what is measured and how to read the numbers.
"""
from __future__ import annotations
import argparse, contextlib, io, os, platform, sys, tempfile, time
os.environ.setdefault('KINETO_LOG_LEVEL', '5')  # quiets the profiler's 'no GPU' log line in --breakdown

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
from tqdm import tqdm

# Measure the repository's own cnn_course (this file's ../), installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import get_device, torch_seed
from cnn_course.data import DeviceLoader, make_transform, write_synthetic_cifar10, SyntheticCIFAR10
from cnn_course.models import Net, CNN, FashionCNN, with_torch_dropout
from cnn_course.train import fit

BATCH_SIZE, LR = 100, 0.01  # the source's settings

# ------------------------------------------------------------------------------------------------------------
# (a) The source's way, reproduced faithfully: its transforms (a Lambda flattens for the FC net), plain
# DataLoaders
# that run the transform on every item of every epoch, a `.item()` for the loss and for the correct count on
# every
# batch, and an evaluation phase in eval mode but *with* autograd (the source has no `no_grad`). The only
# change is
# that the progress bar (the source's `tqdm.notebook`) writes to /dev/null, since this is not a notebook.
# ------------------------------------------------------------------------------------------------------------

def source_transform(flatten: bool):
    "The source's `transform1` (flatten=True) or `transform2`."
    steps = [transforms.ToTensor(), transforms.Normalize(0.5, 0.5)]
    if flatten: steps.append(transforms.Lambda(lambda x: x.view(-1)))
    return transforms.Compose(steps)

_DEVNULL = open(os.devnull, 'w')

def source_fashion_cnn() -> nn.Module:
    """Lesson 3's FashionCNN with PyTorch's own `nn.Dropout` in place of each `FastDropout`: the source's
    layers."""
    return with_torch_dropout(FashionCNN())

def source_fit(net, optimizer, criterion, num_epochs, train_loader, test_loader, device, history):
    "The source's `fit`, line for line (progress bar to /dev/null)."
    base_epochs = len(history)
    for epoch in range(base_epochs, num_epochs + base_epochs):
        train_loss = 0
        train_acc = 0
        val_loss = 0
        val_acc = 0

        net.train()
        count = 0
        for inputs, labels in tqdm(train_loader, file=_DEVNULL):
            count += len(labels)
            inputs = inputs.to(device)
            labels = labels.to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            train_loss += loss.item()
            loss.backward()
            optimizer.step()
            predicted = torch.max(outputs, 1)[1]
            train_acc += (predicted == labels).sum().item()
            avg_train_loss = train_loss / count
            avg_train_acc = train_acc / count

        net.eval()
        count = 0
        for inputs, labels in test_loader:
            count += len(labels)
            inputs = inputs.to(device)
            labels = labels.to(device)
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            val_loss += loss.item()
            predicted = torch.max(outputs, 1)[1]
            val_acc += (predicted == labels).sum().item()
            avg_val_loss = val_loss / count
            avg_val_acc = val_acc / count

        print(f'Epoch [{(epoch+1)}/{num_epochs+base_epochs}], loss: {avg_train_loss:.5f} acc: '
              f'{avg_train_acc:.5f} val_loss: {avg_val_loss:.5f}, val_acc: {avg_val_acc:.5f}')
        item = np.array([epoch+1, avg_train_loss, avg_train_acc, avg_val_loss, avg_val_acc])
        history = np.vstack((history, item))
    return history

# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------

def sync(device):
    "Wait for queued GPU work, so a timer measures work done rather than work queued."
    if device.type == 'cuda': torch.cuda.synchronize(device)

def _cpu_busy():
    "CPU seconds used so far by the whole machine (Linux /proc/stat), or None where unknown."
    try:
        with open('/proc/stat') as f: ticks = [int(v) for v in f.readline().split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf('SC_CLK_TCK')  # all but idle and iowait
    except (OSError, ValueError, AttributeError): return None

class Seconds(float):
    """A wall time that also knows how many cores other processes kept busy meanwhile (`others`, None if
    unknown)."""
    others = None

def timed(fn, device):
    "`(fn(), Seconds)`, synchronised on both ends; `.others` measures the competition for the CPU."
    sync(device)
    busy0, own0, start = _cpu_busy(), sum(os.times()[:2]), time.perf_counter()
    result = fn()
    sync(device)
    t = Seconds(time.perf_counter() - start)
    busy1, own1 = _cpu_busy(), sum(os.times()[:2])
    if busy0 is not None and busy1 is not None and t > 0.05:
        t.others = max(0.0, (busy1 - busy0) - (own1 - own0)) / t
    return result, t

def others_note(ts) -> str:
    "'others 0.03 cores' for the fastest of `ts`, flagged when other work competed for the CPU."
    best = min(ts)
    if best.others is None: return ''
    return f'  [other processes: {best.others:.2f} cores' + (' BUSY: not a clean timing]'
                                                             if best.others > 0.15 else ']')

def quiet(fn):
    "`(fn(), what it printed)`: keeps the epoch lines out of the report's tables."
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): result = fn()
    return result, buf.getvalue().strip()

MODELS = {
    'fc':  dict(title='FC  Net(3072, 10, 128), flatten transform', make=lambda: Net(3072, 10, 128),
                flatten=True),
    'cnn': dict(title='CNN CNN(10, 128)', make=lambda: CNN(10, 128), flatten=False),
}

class Data:
    "Opens the CIFAR-10-format train/test sets with a given transform (synthetic files or real ones)."
    def __init__(self, root, synthetic, n_train, n_test):
        self.root, self.synthetic, self.n_train, self.n_test = root, synthetic, n_train, n_test

    def open(self, train, transform):
        cls = SyntheticCIFAR10 if self.synthetic else datasets.CIFAR10
        ds = cls(self.root, train=train, transform=transform, download=False)
        n = self.n_train if train else self.n_test
        if n is not None and n < len(ds): ds = Subset(ds, range(n))  # real data: the first n items
        return ds

def forward_macs(net, input_shape):
    "Multiply-accumulates per image of each Conv2d and Linear layer, from the layer sizes and output shapes."
    names = {}  # a layer registered under two names (as in the source's CNN): keep the shortest
    for name, mod in net.named_modules(remove_duplicate=False):
        if (isinstance(mod, (nn.Conv2d, nn.Linear)) and
            (id(mod) not in names or name.count('.') < names[id(mod)].count('.'))):
            names[id(mod)] = name
    rows = []
    def hook(mod, inp, out):
        # the source's names, in forward order: conv1, conv2, ..., l1, l2, ...
        kind = 'conv' if isinstance(mod, nn.Conv2d) else 'l'
        alias = f'{kind}{sum(r[0].startswith(kind) for r in rows) + 1}'
        name = alias if alias == names[id(mod)] else f'{alias} ({names[id(mod)]})'
        if isinstance(mod, nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            rows.append((name, out[0].numel() * k))
        else: rows.append((name, mod.in_features * mod.out_features))
    mods = {id(m): m for m in net.modules() if id(m) in names}.values()
    hooks = [m.register_forward_hook(hook) for m in mods]
    with torch.inference_mode(): net.cpu().eval()(torch.zeros(1, *input_shape))
    for h in hooks: h.remove()
    return rows

def matmul_peak(device, n=2048, reps=5):
    "(best GFLOP/s, its Seconds) of an n x n float32 `torch.mm` on `device` with the current thread count."
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b); sync(device)  # warm-up
    best = min(timed(lambda: torch.mm(a, b), device)[1] for _ in range(reps))
    return 2 * n**3 / best / 1e9, best

# ------------------------------------------------------------------------------------------------------------
# One model, both ways
# ------------------------------------------------------------------------------------------------------------

def run_model(key, data, device, epochs, seed, warmup_batches, repeat, amp=None):
    """Time `epochs` epochs of the source's way and of ours (and our decode), best of `repeat` alternating
    runs."""
    spec = MODELS[key]
    torch_seed(seed)
    # the same initial weights for both ways
    init = {k: v.clone() for k, v in spec['make']().state_dict().items()}
    criterion = nn.CrossEntropyLoss()

    def new_net():
        net = spec['make']()
        net.load_state_dict(init)
        net = net.to(device)
        return net, optim.SGD(net.parameters(), lr=LR)

    src_train = data.open(True, source_transform(spec['flatten']))
    src_test = data.open(False, source_transform(spec['flatten']))
    our_train = data.open(True, make_transform(flatten=spec['flatten']))
    our_test = data.open(False, make_transform(flatten=spec['flatten']))

    # Untimed warm-up of both ways on a throwaway copy: a few batches through the same code (and a small
    # decode).
    warm_train, warm_test = range(warmup_batches * BATCH_SIZE), range(BATCH_SIZE)
    net, opt = new_net()
    quiet(lambda: source_fit(net, opt, criterion, 1,
                             DataLoader(Subset(src_train, warm_train), batch_size=BATCH_SIZE,
          shuffle=True), DataLoader(Subset(src_test, warm_test), batch_size=BATCH_SIZE), device,
          np.zeros((0, 5))))
    net, opt = new_net()
    quiet(lambda: fit(net, opt, criterion, 1,
                      DeviceLoader(Subset(our_train, warm_train), batch_size=BATCH_SIZE, shuffle=True,
                                   device=device),
                      DeviceLoader(Subset(our_test, warm_test), batch_size=BATCH_SIZE, device=device),
                      device, np.zeros((0, 5)), progress=False, amp=amp))

    src_times, decode_times, our_times = [], [], []
    for _ in range(repeat):
        # (a) the source's way: the transform runs on every item, every epoch
        net, opt = new_net()
        train_loader = DataLoader(src_train, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)
        test_loader = DataLoader(src_test, batch_size=BATCH_SIZE, shuffle=False, num_workers=0)
        torch_seed(seed)
        (src_hist, src_out), t = timed(lambda: quiet(lambda: source_fit(
            net, opt, criterion, epochs, train_loader, test_loader, device, np.zeros((0, 5)))), device)
        src_times.append(t)

        # (b) ours: decode once into device tensors, then `fit`
        (train_dl, test_dl), t = timed(lambda: (
            DeviceLoader(our_train, batch_size=BATCH_SIZE, shuffle=True, device=device),
            DeviceLoader(our_test, batch_size=BATCH_SIZE, shuffle=False, device=device)), device)
        decode_times.append(t)
        net, opt = new_net()
        torch_seed(seed)
        (our_hist, our_out), t = timed(lambda: quiet(lambda: fit(
            net, opt, criterion, epochs, train_dl, test_dl, device, np.zeros((0, 5)), progress=False,
            amp=amp)), device)
        our_times.append(t)

    return dict(key=key, spec=spec, src_time=min(src_times), our_time=min(our_times),
                decode_time=min(decode_times),
                src_times=src_times, our_times=our_times, decode_times=decode_times,
                src_hist=src_hist, our_hist=our_hist, src_out=src_out, our_out=our_out,
                loader_device=train_dl.x.device, n_train=len(our_train), n_test=len(our_test),
                amp='' if amp is None else f', amp={amp!r}')

# ------------------------------------------------------------------------------------------------------------
# Optional: where does our CNN epoch go? (--breakdown)
# ------------------------------------------------------------------------------------------------------------

def _step_pieces(batches, device, seed, channels_last=False, threads=None, warm=3):
    "Mean ms per batch of zero_grad+forward, loss, backward and optimizer step of a fresh CNN over `batches`."
    old = torch.get_num_threads()
    if threads: torch.set_num_threads(threads)
    try:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        torch_seed(seed)
        net = CNN(10, 128).to(device).to(memory_format=fmt)
        opt = optim.SGD(net.parameters(), lr=LR)
        criterion = nn.CrossEntropyLoss()
        t = dict(forward=0., loss=0., backward=0., step=0.)
        for i, (x, y) in enumerate(batches[:warm] + batches):
            x = x.contiguous(memory_format=fmt)
            sync(device); t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = net(x); sync(device); t1 = time.perf_counter()
            loss = criterion(out, y); sync(device); t2 = time.perf_counter()
            loss.backward(); sync(device); t3 = time.perf_counter()
            opt.step(); sync(device); t4 = time.perf_counter()
            if i < warm: continue
            for k, s, e in (('forward', t0, t1), ('loss', t1, t2), ('backward', t2, t3), ('step', t3, t4)):
                t[k] += (e - s) * 1e3 / len(batches)
        return t
    finally: torch.set_num_threads(old)

def breakdown(data, device, seed, n_batches=20):
    """Where our CNN epoch goes: the pieces of a training step, variants of it, the rest of `fit`, and the
    source's transform."""
    from torch.profiler import profile, ProfilerActivity
    from cnn_course.train import _snapshot, evaluate
    ds = data.open(True, make_transform())
    n_batches = max(1, min(n_batches, len(ds) // BATCH_SIZE))
    torch_seed(seed)
    dl = DeviceLoader(Subset(ds, range(n_batches * BATCH_SIZE)), batch_size=BATCH_SIZE, shuffle=True,
                      device=device)
    batches = list(dl)

    print(f'\n== breakdown: our CNN training step, ms per batch of {BATCH_SIZE} (mean of {n_batches} '
          'batches) ==')
    variants = [('as fit runs it', {}), ('channels_last', dict(channels_last=True))]
    if device.type == 'cpu' and torch.get_num_threads() > 1: variants.append(('1 thread', dict(threads=1)))
    for name, kw in variants:
        p = _step_pieces(batches, device, seed, **kw)
        print(f'  {name:15s} ' + '  '.join(f'{k} {v:6.2f}'
                                           for k, v in p.items()) + f'   total {sum(p.values()):6.2f}')

    torch_seed(seed)
    net = CNN(10, 128).to(device)
    opt = optim.SGD(net.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    steps = batches[:10]
    with profile(activities=acts) as prof:
        for x, y in steps:
            opt.zero_grad(set_to_none=True)
            criterion(net(x), y).backward()
            opt.step()
        sync(device)
    key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(f'\n  torch.profiler, {len(steps)} training steps as fit runs them, top ops by self time:')
    table = prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=42)
    print('\n'.join('  ' + line for line in table.splitlines()))

    # the rest of fit's epoch
    _, t_snap = timed(lambda: _snapshot(net, opt), device)
    test_ds = data.open(False, make_transform())

    # end to end: fit as it is, and fit handed a model converted to channels_last (which fit could do itself)
    sub_train = DeviceLoader(Subset(ds, range(min(2000, len(ds)))), batch_size=BATCH_SIZE, shuffle=True,
                             device=device)
    sub_test = DeviceLoader(Subset(test_ds, range(min(500, len(test_ds)))), batch_size=BATCH_SIZE,
                            device=device)
    def fit_once(channels_last):
        torch_seed(seed)
        net = CNN(10, 128).to(device)
        if channels_last: net = net.to(memory_format=torch.channels_last)
        opt = optim.SGD(net.parameters(), lr=LR)
        torch_seed(seed)
        (h, _), t = timed(lambda: quiet(lambda: fit(net, opt, criterion, 1, sub_train, sub_test, device,
                                                    np.zeros((0, 5)), progress=False)), device)
        return h, t
    best = {}
    for _ in range(2):
        for cl in (False, True):
            h, t = fit_once(cl)
            if cl not in best or t < best[cl][1]: best[cl] = (h, t)
    diff = np.abs(best[True][0] - best[False][0]).max()
    print(f'\n  fit, 1 epoch on {len(sub_train.y)} + {len(sub_test.y)} images, best of 2: as is '
          f'{best[False][1]:.2f} s, model in channels_last {best[True][1]:.2f} s '
          f'({best[False][1] / best[True][1]:.2f}x; history differs by at most {diff:.1e})'
          + others_note([best[False][1], best[True][1]]))
    test_dl = DeviceLoader(Subset(test_ds, range(min(1000, len(test_ds)))), batch_size=BATCH_SIZE,
                           device=device)
    evaluate(net, test_dl, criterion, device)
    _, t_eval = timed(lambda: evaluate(net, test_dl, criterion, device), device)
    _, t_iter = timed(lambda: [None for _ in dl], device)
    print(f'\n  rest of fit: snapshot {t_snap*1e3:.2f} ms per epoch; evaluate {t_eval/len(test_dl)*1e3:.2f} '
          f'ms per batch; DeviceLoader shuffle+gather {t_iter/len(dl)*1e3:.3f} ms per batch')

    # what the source pays per item and per epoch on top of the same arithmetic
    for flatten in (True, False):
        src = data.open(True, source_transform(flatten))
        n = min(1000, len(src))
        for i in range(50): src[i]
        _, t = timed(lambda: [src[i] for i in range(n)], device)
        print(f'  source per-item decode ({"transform1, flat" if flatten else "transform2, image"}): '
              f'{t / n * 1e6:.0f} us per image, {t / n * (len(src) + len(test_ds)):.2f} s per epoch of '
              f'{len(src)} + {len(test_ds)} images')

# ------------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default=None, help='cpu, cuda, mps (default: the best available)')
    p.add_argument('--epochs', type=int, default=1, help='epochs timed per way (default 1)')
    p.add_argument('--n-train', type=int, default=10_000, help='training images (default 10000)')
    p.add_argument('--n-test', type=int, default=2_000, help='test images (default 2000)')
    p.add_argument('--models', default='fc,cnn', help='comma-separated: fc, cnn (default fc,cnn)')
    p.add_argument('--data-root', default=None,
                   help='a folder holding real CIFAR-10 (cifar-10-batches-py/); default: write a synthetic '
                        'set to a temp dir')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: leave torch\'s '
                                                             'choice)')
    p.add_argument('--seed', type=int, default=123)
    p.add_argument('--warmup-batches', type=int, default=3,
                   help='training batches of the untimed warm-up (default 3)')
    p.add_argument('--repeat', type=int, default=1,
                   help='time each way this many times, alternating, and keep the fastest (default 1)')
    p.add_argument('--breakdown', action='store_true', help='also time the pieces of our CNN training step')
    p.add_argument('--amp', choices=('off', 'auto', 'bf16', 'fp16'), default='off',
                   help="mixed precision for ours (fit's amp=; the source's loop stays float32, as the "
                        "source wrote it)")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(',') if m.strip()]
    args.amp = None if args.amp == 'off' else args.amp
    bad = [m for m in args.models if m not in MODELS]
    if bad: p.error(f'--models: unknown {bad}; choose from {list(MODELS)}')
    if args.epochs < 1: p.error('--epochs must be >= 1')
    if args.repeat < 1: p.error('--repeat must be >= 1')
    if args.data_root and not os.path.isdir(os.path.join(args.data_root, 'cifar-10-batches-py')):
        p.error(f'--data-root {args.data_root}: no cifar-10-batches-py/ there (the real CIFAR-10 as '
                'torchvision stores it); leave the option out to time on a synthetic set in the same format')
    return args

def load_note() -> str:
    "The 1-minute load average (our own threads included) against the core count."
    if not hasattr(os, 'getloadavg'): return 'load average unknown'
    return f'1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores'

def report_model(r, epochs):
    "Print one model's timings and ratios."
    e = epochs
    times = lambda ts: '' if len(ts) == 1 else '  (runs: ' + ', '.join(f'{t/e:.3f}' for t in ts) + ')'
    print(f'\n== {r["spec"]["title"]}: {r["n_train"]} train / {r["n_test"]} test images, batch {BATCH_SIZE}, '
          f'SGD lr {LR}, {e} epoch(s) per run ==')
    print(f'  (a) source loop: DataLoader, per-item transforms, .item() per batch  {r["src_time"]/e:8.3f} '
          's/epoch'
          + times(r['src_times']) + others_note(r['src_times']))
    print(f'  (b) ours: fit(progress=False{r["amp"]}) + DeviceLoader (data on {r["loader_device"]})'
          f'{"":{max(0, 8 - len(str(r["loader_device"])))}s}{r["our_time"]/e:8.3f} s/epoch'
          + times(r['our_times']) + others_note(r['our_times']))
    print(f'      ours, one-off decode of train + test sets into tensors   {r["decode_time"]:8.3f} s per run'
          + ('' if len(r['decode_times']) == 1
             else '  (runs: ' + ', '.join(f'{t:.3f}' for t in r['decode_times']) + ')')
          + others_note(r['decode_times']))
    print(f'  ratio source/ours, epoch only:            {r["src_time"]/r["our_time"]:6.2f}x')
    print(f'  ratio source/ours, {e} epoch(s) + decode:   '
          f'{r["src_time"]/(r["our_time"]+r["decode_time"]):6.2f}x')
    # The decode runs the same per-image transforms once, so it estimates what every source epoch spends on
    # them:
    # a source that did the same arithmetic as ours would be slower by about (decode + ours) / ours per epoch.
    print(f'  for scale, the per-image decode alone: (decode + ours per epoch) / ours per epoch = '
          f'{(r["decode_time"] + r["our_time"] / e) / (r["our_time"] / e):.2f}x')
    print(f'  last epoch, source: {r["src_out"].splitlines()[-1]}  (losses ~{BATCH_SIZE}x too small: the '
          'source\'s bug)')
    print(f'  last epoch, ours:   {r["our_out"].splitlines()[-1]}')

def report_flops(cnn, device, epochs):
    "Analytic FLOPs of the CNN epoch against a same-run matrix-multiply peak."
    rows = forward_macs(CNN(10, 128), (3, 32, 32))
    macs = sum(m for _, m in rows)
    fwd = 2 * macs                                  # FLOPs per image, forward
    train_flops = 3 * fwd * cnn['n_train']          # forward + backward ~ 3x forward
    eval_flops = fwd * cnn['n_test']
    epoch_flops = train_flops + eval_flops
    peak, t_peak = matmul_peak(device)
    print('\n== CNN arithmetic ==')
    print('  forward MACs per image: ' + ', '.join(f'{n} {m:,}' for n, m in rows) + f'; total {macs:,}')
    print(f'  FLOPs per epoch: train {train_flops/1e9:.1f} G (2 FLOPs/MAC x 3 for forward+backward x '
          f'{cnn["n_train"]} images) + eval {eval_flops/1e9:.1f} G (forward x {cnn["n_test"]}) = '
          f'{epoch_flops/1e9:.1f} GFLOP')
    print(f'  same-run peak: torch.mm 2048x2048 float32 on {device}, {torch.get_num_threads()} threads, best '
          f'of 5: {peak:.1f} GFLOP/s' + others_note([t_peak]))
    for name, t in (('ours', cnn['our_time']), ('source', cnn['src_time'])):
        rate = epoch_flops / (t / epochs) / 1e9
        print(f'  {name + ":":8s}{rate:6.1f} GFLOP/s over the whole epoch = {rate / peak:5.1%} of that peak')

def main(argv=None):
    args = parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f'torch {torch.__version__}, torchvision {torchvision.__version__}, python '
          f'{platform.python_version()}, {platform.machine()}')
    print(f'device {device}' + (f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else '') +
          f', torch.get_num_threads() {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}')
    print(f'at start: {load_note()}')
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix='fit_speed_') as tmp:
        if args.data_root:
            data = Data(args.data_root, synthetic=False, n_train=args.n_train, n_test=args.n_test)
            print(f'data: real CIFAR-10 from {args.data_root} (first {args.n_train} train / {args.n_test} '
                  'test images)')
        else:
            _, t = timed(lambda: write_synthetic_cifar10(tmp, n_train=args.n_train, n_test=args.n_test,
                                                         seed=0), device)
            data = Data(tmp, synthetic=True, n_train=None, n_test=None)
            print(f'data: synthetic CIFAR-10 (real pickle format, read by torchvision), written in {t:.1f} s '
                  'to a temp dir')

        results = []
        for key in args.models:
            results.append(run_model(key, data, device, args.epochs, args.seed, args.warmup_batches,
                                     args.repeat, args.amp))
            report_model(results[-1], args.epochs)

        cnn = next((r for r in results if r['key'] == 'cnn'), None)
        if cnn is not None and args.amp is None: report_flops(cnn, device, args.epochs)
        elif cnn is not None:
            print('\n(the float32 peak does not apply to a mixed-precision run: bench/amp_speed.py '
                                    'measures the share of the bf16 peak)')

        print('\n== summary: source / ours, higher is better for ours ==')
        for r in results:
            e = args.epochs
            print(f'  {r["key"]:4s} epoch only {r["src_time"]/r["our_time"]:6.2f}x   '
                  f'{e} epoch(s) + decode {r["src_time"]/(r["our_time"]+r["decode_time"]):6.2f}x   '
                  f'({r["src_time"]/e:.2f} s vs {r["our_time"]/e:.2f} s per epoch, decode '
                  f'{r["decode_time"]:.2f} s)')

        if device.type == 'cpu':
            targets = {'fc': 15, 'cnn': 2}
            print('  targets on 2 CPU cores, epoch only: ' + ', '.join(
                f'{r["key"]} >= {targets[r["key"]]}x '
                f'({"met" if r["src_time"] / r["our_time"] >= targets[r["key"]] else "not met"})'
                for r in results))
        flagged = [t for r in results for t in (r['src_time'], r['our_time'], r['decode_time'])
                   if t.others is not None and t.others > 0.15]
        if flagged:
            print(f'  {len(flagged)} of the kept timings ran while other processes kept > 0.15 cores busy: '
                          'rerun on an idle machine (or with --repeat 3) before trusting the ratios')
        elif all(r['src_time'].others is not None for r in results):
            print('  every kept timing ran on an otherwise idle CPU')

        if args.breakdown: breakdown(data, device, args.seed)
    print(f'\ntotal wall time {time.perf_counter() - started:.0f} s')
    return 0

if __name__ == '__main__':
    sys.exit(main())
