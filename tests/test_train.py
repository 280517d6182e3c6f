"What the notebooks can't check well: host syncs in the loop, and the source's code pasted as it is."
import os, subprocess, sys, warnings
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

from cnn_course.core import torch_seed
from cnn_course.train import fit, eval_loss, evaluate
from cnn_course.data import DeviceLoader
from cnn_course.viz import evaluate_history, show_images_labels


def _data(n, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class SyncCounter:
    "Counts calls that copy a value from a tensor to Python (each one waits for the device)."
    names = ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__int__', '__float__')

    def __enter__(self):
        self.count, self.saved = 0, {n: getattr(torch.Tensor, n) for n in self.names}
        for n, f in self.saved.items():
            def counted(*a, _f=f, **k):
                self.count += 1
                return _f(*a, **k)
            setattr(torch.Tensor, n, counted)
        return self

    def __exit__(self, *exc):
        for n, f in self.saved.items(): setattr(torch.Tensor, n, f)


def _syncs_for(n_train):
    torch_seed(0)
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
    train = DeviceLoader(_data(n_train), batch_size=10, shuffle=True, device='cpu')
    test = DeviceLoader(_data(50, seed=1), batch_size=10, device='cpu')
    with SyncCounter() as c:
        fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 2, train, test, 'cpu',
            np.zeros((0, 5)), progress=False)
    return c.count


def test_no_per_batch_host_sync():
    # 10 batches or 100 batches per epoch: the number of device->host reads must not change.
    few, many = _syncs_for(100), _syncs_for(1000)
    assert few == many, (f'{few} syncs for 10 batches/epoch but {many} for 100: something reads a tensor '
                         'every batch')
    assert few <= 20


def test_source_chapter_calls_run_unchanged():
    # The book's calls, positional arguments in its order, with plain DataLoaders.
    train_set, test_set = _data(200), _data(60, seed=1)
    train_loader1 = DataLoader(train_set, batch_size=100, shuffle=True)
    test_loader1 = DataLoader(test_set, batch_size=100, shuffle=False)
    device = torch.device('cpu')
    torch_seed()
    net = nn.Linear(12, 2).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01)
    loss = eval_loss(test_loader1, device, net, criterion)
    assert loss.grad_fn is not None
    history = np.zeros((0, 5))
    history = fit(net, optimizer, criterion, 2, train_loader1, test_loader1, device, history)
    history = fit(net, optimizer, criterion, 1, train_loader1, test_loader1, device, history)
    assert history.shape == (3, 5) and list(history[:, 0]) == [1, 2, 3]
    evaluate_history(history)
    images = TensorDataset(torch.rand(60, 3, 8, 8) * 2 - 1, torch.arange(60) % 10)
    test_loader2 = DataLoader(images, batch_size=100, shuffle=False)
    classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
    show_images_labels(test_loader2, classes, None, None)
    show_images_labels(test_loader2, classes, nn.Sequential(nn.Flatten(), nn.Linear(192, 10)), device)


def test_losses_are_per_sample_means():
    # A last short batch must not change the average: 25 samples in batches of 10 (10, 10, 5).
    torch_seed(0)
    net = nn.Linear(12, 2)
    ds = _data(25)
    criterion = nn.CrossEntropyLoss()
    loss10, acc10 = evaluate(net, DataLoader(ds, batch_size=10), criterion, 'cpu')
    with torch.no_grad():
        x, y = ds.tensors
        true_mean = criterion(net(x), y).item()
    assert loss10 == pytest.approx(true_mean, abs=1e-6)


def test_fit_refuses_bad_input_before_training():
    net = nn.Linear(12, 2)
    before = [p.detach().clone() for p in net.parameters()]
    loader = DataLoader(_data(20), batch_size=10)
    opt = optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='5 columns'):
        fit(net, opt, nn.CrossEntropyLoss(), 1, loader, loader, 'cpu', np.zeros((0, 3)), progress=False)
    with pytest.raises(ValueError, match='cannot take an input of shape'):
        fit(nn.Linear(7, 2), opt, nn.CrossEntropyLoss(), 1, loader, loader, 'cpu', np.zeros((0, 5)),
            progress=False)
    with pytest.raises(ValueError, match='num_epochs'):
        fit(net, opt, nn.CrossEntropyLoss(), -1, loader, loader, 'cpu', np.zeros((0, 5)), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_diverging_loss_stops_and_keeps_last_good_epoch():
    torch_seed(0)
    net = nn.Linear(12, 2)
    x, y = _data(40).tensors
    loader = DataLoader(TensorDataset(x * 1e10, y), batch_size=10)  # huge inputs: a big step overflows
    h = fit(net, optim.SGD(net.parameters(), lr=1e-22), nn.CrossEntropyLoss(), 1, loader, loader, 'cpu',
            np.zeros((0, 5)), progress=False)
    good = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        h2 = fit(net, optim.SGD(net.parameters(), lr=1e20), nn.CrossEntropyLoss(), 3, loader, loader, 'cpu',
                 h, progress=False)
    assert len(h2) == 1 and np.array_equal(h2, h)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert msgs and 'at epoch 2, batch' in msgs[0]
    assert all(torch.equal(good[k], v) for k, v in net.state_dict().items())


def test_lr_find_leaves_the_model_the_optimizer_and_the_random_numbers_as_they_were():
    import copy
    from torch.utils.data import DataLoader, TensorDataset
    from cnn_course.train import lr_find
    torch.manual_seed(0)
    x = torch.randn(200, 10)
    loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=20, shuffle=True)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for xb, yb in loader:  # some momentum to keep
        opt.zero_grad(); torch.nn.functional.cross_entropy(net(xb), yb).backward(); opt.step()
    weights, state, rng = (copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()),
                           torch.get_rng_state())
    found = lr_find(net, opt, torch.nn.CrossEntropyLoss(), loader, 'cpu', num_iter=50)
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    after = opt.state_dict()
    assert after['param_groups'] == state['param_groups']
    assert all(torch.equal(state['state'][k]['momentum_buffer'],
                           v['momentum_buffer']) for k, v in after['state'].items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert found.lrs == sorted(found.lrs) and len(found.losses) == len(found.lrs) >= 10
    assert found.suggestion == found.lrs[int(np.argmin(found.losses))] / 10
    with pytest.raises(ValueError, match='need 0 < start_lr < end_lr'):
        lr_find(net, opt, torch.nn.CrossEntropyLoss(), loader, 'cpu', start_lr=1, end_lr=0.1)


NO_BF16 = 'float32 (this cpu has no native bf16)'
KERNELS_AVX2 = 'float32 (this cpu has bf16, but PyTorch runs its AVX2 kernels: ATEN_CPU_CAPABILITY)'

@pytest.mark.parametrize('flags, kernels, expected, said', [
    ({'avx', 'avx2', 'fma'}, 'AVX2', None, NO_BF16),                    # AVX2 only (no native bf16): float32
    ({'avx2', 'avx512f', 'avx512_bf16'}, 'AVX512', torch.bfloat16, None),  # AVX512-BF16
    ({'avx2', 'amx_bf16', 'amx_tile'}, 'AVX512', torch.bfloat16, None),    # AMX
    # bf16 CPU, ATEN_CPU_CAPABILITY=avx2
    ({'avx2', 'avx512f', 'avx512_bf16'}, 'AVX2', None, KERNELS_AVX2),
])
def test_amp_auto_on_either_kind_of_cpu(monkeypatch, capsys, flags, kernels, expected, said):
    """Both of `amp='auto'`'s CPU paths on whatever CPU runs the test: the CPU's flags are replaced, the
    choice follows them."""
    import cnn_course.train as train
    monkeypatch.setattr(train, '_cpu_flags', lambda: set(flags))
    monkeypatch.setattr(train, '_cpu_capability', lambda: kernels)
    dtype, why = train.resolve_amp('auto', 'cpu')
    assert dtype is expected
    assert why == (said or 'bf16 autocast (native on this cpu)')
    # asked for explicitly, bf16 runs anyway, and says when it is emulated
    bf16_why = train.resolve_amp('bf16', 'cpu')[1]
    assert ('emulated on this cpu: slower than float32' in bf16_why) == (expected is None)
    loader = DeviceLoader(_data(96), 32, device='cpu')
    def run(amp):
        torch_seed(0)
        net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
        return fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 2, loader, loader, 'cpu',
                   np.zeros((0, 5)), progress=False, amp=amp)
    auto, plain = run('auto'), run(None)
    assert f'mixed precision: {why}' in capsys.readouterr().out
    if expected is None: assert np.array_equal(auto, plain)   # float32 is float32: the very same run
    else:
        assert np.isfinite(auto).all() and not np.array_equal(auto, plain)   # bf16 products round differently


@pytest.mark.parametrize('capability, expected', [
    ((7, 5), torch.float16),    # Colab's T4 (Turing): fp16 tensor cores, no bf16
    ((7, 0), torch.float16),    # V100 (Volta)
    ((8, 0), torch.bfloat16),   # A100 (Ampere): bf16 from here on
    ((9, 0), torch.bfloat16),   # H100, H200 (Hopper)
    (None, torch.bfloat16),     # an AMD GPU under ROCm (PyTorch counts them all as able)
])
def test_amp_auto_on_old_and_new_gpus(monkeypatch, capability, expected):
    """`amp='auto'` on a GPU follows its compute capability. No GPU here: the capability is the one such a
    GPU reports, and `torch.cuda.is_bf16_supported()` answers True, as PyTorch does on a T4 (a bf16 tensor
    can be made
    there)."""
    import cnn_course.train as train
    monkeypatch.setattr(train, '_gpu_capability', lambda device: capability)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *args, **kwargs: True)
    dtype, why = train.resolve_amp('auto', 'cuda')
    assert dtype is expected
    if expected is torch.float16:
        assert (why == 'fp16 autocast with a gradient scaler (this GPU (compute capability '
                       f'{capability[0]}.{capability[1]}) has no native bf16)')
    else: assert why == 'bf16 autocast (native on this cuda)'
    # asked for by name: bf16 is refused where it is not native, fp16 runs everywhere (with its scaler)
    # without a GPU PyTorch switches cuda autocast off
    monkeypatch.setattr(train, '_autocast_works', lambda kind, dtype: True)
    if expected is torch.float16:
        with pytest.raises(ValueError, match=r"amp='bf16': this GPU \(compute capability 7\.\d\) has no "
                                             r"native bfloat16.*amp='fp16'"):
            train.resolve_amp('bf16', 'cuda')
    else: assert train.resolve_amp('bf16', 'cuda') == (torch.bfloat16, 'bf16 autocast')
    assert train.resolve_amp('fp16', 'cuda') == (torch.float16, 'fp16 autocast with a gradient scaler')


def test_amp_auto_follows_the_kernels_pytorch_runs():
    "A real process with PyTorch held to its AVX2 kernels trains in float32, on a CPU with bf16 or without."
    env = {**os.environ, 'ATEN_CPU_CAPABILITY': 'avx2', 'OMP_NUM_THREADS': '1'}
    code = ("import torch; from cnn_course.train import resolve_amp; "
            "print(torch.backends.cpu.get_cpu_capability()); print(resolve_amp('auto', 'cpu'))")
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kernels, choice = r.stdout.splitlines()[-2:]
    if kernels == 'AVX2': assert choice in (repr((None, NO_BF16)), repr((None, KERNELS_AVX2))), choice
    else:
        # a CPU without AVX2 (or not x86): no bf16 either
        assert choice == repr((None, NO_BF16)), (kernels, choice)


_PAGE_FAULTS = '''
import sys, numpy as np, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from cnn_course.models import FashionCNN
from cnn_course.train import fit, _minor_page_faults, _reuse_freed_memory
if sys.argv[1] != 'default':   # a tiny fit on the CPU first: it makes the setting
    x = torch.randn(20, 4); net = nn.Linear(4, 2)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=10)
    fit(net, torch.optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 1, data, None, 'cpu',
        np.zeros((0, 5)), progress=False)
if sys.argv[1] == 'setting only': print('nan', _reuse_freed_memory()); sys.exit()
torch.manual_seed(0)
net = FashionCNN().to(memory_format=torch.channels_last)   # then the same training steps, by hand, either way
opt = torch.optim.AdamW(net.parameters())
x = torch.randn(32, 1, 28, 28).contiguous(memory_format=torch.channels_last); y = torch.randint(0, 10, (32,))
def step():
    loss = nn.functional.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(15): step()   # the heap grows to what a step needs
start = _minor_page_faults()
for _ in range(10): step()
# (asking would set it)
print((_minor_page_faults() - start) / 10, _reuse_freed_memory() if sys.argv[1] != 'default' else None)
'''


@pytest.mark.skipif(not sys.platform.startswith('linux') or __import__('platform').libc_ver()[0] != 'glibc',
                    reason="glibc's malloc only")
@pytest.mark.long
def test_fit_on_the_cpu_keeps_freed_memory_for_reuse():
    """After `fit` on the CPU, training steps reuse freed memory instead of faulting in fresh pages, as they
    do by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    env['OMP_NUM_THREADS'] = '1'
    def faults_per_step(mode, **extra):
        r = subprocess.run([sys.executable, '-c', _PAGE_FAULTS, mode], env={**env, **extra},
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        faults, applied = r.stdout.split()[-2:]
        return float(faults), applied == 'True'
    default, _ = faults_per_step('default')
    kept, applied = faults_per_step('after fit')
    # glibc's defaults hand the step's freed activations back to the kernel (measured: 800-3,400 page faults a
    # step);
    # after fit nearly every page is reused (measured: 0.1-40)
    assert applied and default > 100 and kept < default / 5, (default, kept)
    # a setting of the user's own is left alone
    assert faults_per_step('setting only', MALLOC_TRIM_THRESHOLD_='131072')[1] is False
