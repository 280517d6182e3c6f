"""Files on disk and failures for `cnn_course.data`: synthetic formats, Debian's copy, offline errors, quick
mode."""
import gzip, os, pickle, struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchvision import datasets

import cnn_course.data as data
from cnn_course.data import (DamagedDataError, DeviceLoader, SyntheticCIFAR10, decompress_idx, load_dataset,
                             make_transform, train_val_split, write_synthetic_cifar10, write_synthetic_idx)

IDX = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
       't10k-labels-idx1-ubyte')


@pytest.fixture
def full_mode(monkeypatch, tmp_path):
    "Not quick mode, and no Debian copy: only what a test puts under tmp_path exists."
    monkeypatch.delenv('IN_TEST', raising=False)
    monkeypatch.delenv('CNN_COURSE_QUICK', raising=False)
    monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'no-debian'))


@pytest.fixture
def quick_mode(monkeypatch, tmp_path):
    monkeypatch.delenv('IN_TEST', raising=False)
    monkeypatch.setenv('CNN_COURSE_QUICK', '1')
    monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', str(tmp_path / 'no-debian'))


def no_download(*args, **kwargs): raise AssertionError('quick mode must not download')


# ---- IDX files ----

@pytest.mark.parametrize('cls', [datasets.MNIST, datasets.FashionMNIST])
def test_idx_round_trip(tmp_path, cls):
    raw = write_synthetic_idx(tmp_path, cls.__name__, n_train=30, n_test=20, seed=5)
    assert raw == tmp_path / cls.__name__ / 'raw'
    head = (raw / 'train-images-idx3-ubyte').read_bytes()[:16]
    assert struct.unpack('>IIII', head) == (2051, 30, 28, 28)
    assert struct.unpack('>II', (raw / 't10k-labels-idx1-ubyte').read_bytes()[:8]) == (2049, 20)
    for name in IDX: assert gzip.decompress((raw / f'{name}.gz').read_bytes()) == (raw / name).read_bytes()
    train, test = cls(tmp_path, train=True), cls(tmp_path, train=False)
    assert (train.data.shape == (30, 28, 28) and test.data.shape == (20, 28, 28) and
            train.data.dtype == torch.uint8)
    assert sorted(train.targets.tolist()) == sorted(list(range(10)) * 3)
    # same seed, same bytes; another seed, other images
    again = write_synthetic_idx(tmp_path / 'again', cls.__name__, 30, 20, seed=5)
    assert all((again / n).read_bytes() == (raw / n).read_bytes() for n in IDX)
    other = write_synthetic_idx(tmp_path / 'other', cls.__name__, 30, 20, seed=6)
    assert (other / IDX[0]).read_bytes() != (raw / IDX[0]).read_bytes()
    assert not list(raw.glob('*.tmp'))


def test_idx_images_depend_on_class(tmp_path):
    write_synthetic_idx(tmp_path, n_train=200, n_test=10)
    ds = datasets.MNIST(tmp_path)
    means = torch.stack([ds.data[ds.targets == c].float().mean(0) for c in range(10)])
    dists = torch.cdist(means.flatten(1), means.flatten(1))
    assert dists[~torch.eye(10, dtype=bool)].min() > 500  # class means far apart (pixel units, 784 dims)


def test_truncated_image_file_is_a_clear_error(tmp_path, full_mode):
    raw = write_synthetic_idx(tmp_path, 'MNIST', 50, 20)
    f = raw / 'train-images-idx3-ubyte'
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match='could not read.*truncated, corrupt') as e:
        load_dataset('mnist', root=tmp_path, download=False)
    assert str(raw) in str(e.value)


def test_labels_shorter_than_images_is_a_clear_error(tmp_path, full_mode):
    raw = write_synthetic_idx(tmp_path, 'MNIST', 50, 20)
    f = raw / 'train-labels-idx1-ubyte'
    f.write_bytes(struct.pack('>II', 2049, 40) + f.read_bytes()[8:48])
    with pytest.raises(RuntimeError, match='50 images but 40 labels'):
        load_dataset('mnist', root=tmp_path, download=False)


def test_gz_files_copied_into_raw_are_used(tmp_path, full_mode):
    raw = write_synthetic_idx(tmp_path, 'MNIST', 40, 10)
    for n in IDX: (raw / n).unlink()
    ds = load_dataset('mnist', train=False, root=tmp_path, download=False)
    assert len(ds) == 10 and all((raw / n).is_file() for n in IDX)


def test_corrupt_gz_in_raw_is_a_clear_error(tmp_path, full_mode):
    raw = write_synthetic_idx(tmp_path, 'MNIST', 40, 10)
    for n in IDX: (raw / n).unlink()
    gz = raw / 'train-images-idx3-ubyte.gz'
    gz.write_bytes(gz.read_bytes()[:100] + b'\0\0\0\0')
    with pytest.raises(DamagedDataError, match=r'train-images-idx3-ubyte\.gz is damaged .*Delete it and '
                                               r'fetch it again'):
        load_dataset('mnist', root=tmp_path, download=False)
    assert not list(raw.glob('.*.tmp'))


# ---- Debian's copy ----

def test_decompress_is_atomic_and_idempotent(tmp_path, monkeypatch):
    src = write_synthetic_idx(tmp_path / 'src', 'FashionMNIST', 60, 20)
    for n in IDX: (src / n).unlink()  # like Debian's folder: only .gz files
    dest = tmp_path / 'root' / 'FashionMNIST' / 'raw'
    assert [p.name for p in decompress_idx(src, dest)] == list(IDX)
    stats = {n: (dest / n).stat() for n in IDX}
    umask = os.umask(0); os.umask(umask)
    # the permissions open() gives, not 0600
    assert all(s.st_mode & 0o777 == 0o666 & ~umask for s in stats.values())
    assert decompress_idx(src, dest) == []  # second call: nothing rewritten
    def same(n):
        now = (dest / n).stat()
        return now.st_ino == stats[n].st_ino and now.st_mtime_ns == stats[n].st_mtime_ns
    assert all(same(n) for n in IDX)
    # a file of the wrong size (e.g. copied by hand and cut short) is replaced
    (dest / IDX[0]).write_bytes(b'short')
    assert decompress_idx(src, dest) == [dest / IDX[0]]
    assert (dest / IDX[0]).read_bytes() == gzip.decompress((src / f'{IDX[0]}.gz').read_bytes())
    # a failure half-way leaves neither a partial file nor a temporary one
    (dest / IDX[2]).unlink()
    def broken_copy(inp, out, *args):
        out.write(inp.read(100)); raise OSError('disk full')
    monkeypatch.setattr(data.shutil, 'copyfileobj', broken_copy)
    with pytest.raises(OSError, match='disk full'): decompress_idx(src, dest)
    assert not (dest / IDX[2]).exists() and not list(dest.glob('.*'))


def test_load_dataset_uses_the_debian_copy(tmp_path, full_mode, monkeypatch):
    src = write_synthetic_idx(tmp_path / 'debian', 'FashionMNIST', 60, 20)
    monkeypatch.setattr(data, 'DEBIAN_FASHION_MNIST', str(src))
    ds = load_dataset('fashion-mnist', train=False, root=tmp_path / 'root', download=False)
    assert isinstance(ds, datasets.FashionMNIST) and len(ds) == 20
    assert (tmp_path / 'root' / 'FashionMNIST' / 'raw' / 't10k-images-idx3-ubyte').is_file()
    assert ds[0][0].shape == (1, 28, 28)


@pytest.mark.skipif(not Path(data.DEBIAN_FASHION_MNIST, 't10k-images-idx3-ubyte.gz').exists(),
                    reason='Debian package dataset-fashion-mnist not installed')
def test_real_fashion_mnist_offline(tmp_path, monkeypatch):
    monkeypatch.delenv('IN_TEST', raising=False)
    monkeypatch.delenv('CNN_COURSE_QUICK', raising=False)
    ds = load_dataset('fashion-mnist', train=False, root=tmp_path, download=False)
    assert len(ds) == 10000 and ds.targets.bincount().tolist() == [1000] * 10
    assert ds.classes == list(data.FASHION_MNIST_CLASSES)


# ---- missing data, offline ----

@pytest.mark.parametrize('name,folder', [('mnist', 'MNIST/raw'), ('fashion-mnist', 'FashionMNIST/raw'),
                                         ('cifar10', 'cifar-10-batches-py')])
def test_missing_dataset_offline_names_paths_and_remedies(tmp_path, full_mode, name, folder):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(name, root=tmp_path / 'empty', download=False)
    msg = str(e.value)
    assert str(tmp_path / 'empty' / folder) in msg and 'download=False' in msg and 'download=True' in msg
    worded = e.value.worded('--download', '--no-download', '--data-root')  # how the command words it
    assert '--no-download' in worded and '--data-root' in worded and 'download=' not in worded
    if name == 'fashion-mnist':
        assert 'apt-get install dataset-fashion-mnist' in msg and str(tmp_path / 'no-debian') in msg
    else: assert 'apt-get' not in msg
    assert not (tmp_path / 'empty' / 'synthetic').exists()  # never synthetic outside quick mode


def test_failed_download_becomes_file_not_found(tmp_path, full_mode, monkeypatch):
    # Port 9 on localhost refuses connections at once: a download failure without touching the network.
    monkeypatch.setattr(datasets.MNIST, 'mirrors', ['http://127.0.0.1:9/'])
    with pytest.raises(FileNotFoundError, match='download failed') as e:
        load_dataset('mnist', root=tmp_path, download=True)
    assert str(tmp_path / 'MNIST' / 'raw') in str(e.value) and e.value.__cause__ is not None


def test_names_and_limits_are_validated():
    with pytest.raises(ValueError,
                       match="one of \\('mnist', 'fashion-mnist', 'cifar10', 'colour-fashion'\\)"):
        load_dataset('svhn')
    for bad in (0, -1, 1.5, True, '10'):
        with pytest.raises(ValueError, match='limit'): load_dataset('mnist', limit=bad)


# ---- quick mode ----

def test_quick_mode_writes_synthetic_files_and_never_downloads(tmp_path, quick_mode, monkeypatch, capsys):
    monkeypatch.setattr(datasets.MNIST, 'download', no_download)
    monkeypatch.setattr(data, '_synthetic_roots', {})
    train = load_dataset('mnist', root=tmp_path / 'empty')
    test = load_dataset('mnist', train=False, root=tmp_path / 'empty')
    out = capsys.readouterr().out
    assert out.count('quick mode: MNIST not found locally') == 1 and "MNIST's file format" in out
    assert len(train) == 2000 and len(test) == 1000 and isinstance(train, datasets.MNIST)
    assert Path(train.root) != tmp_path / 'empty' and not (tmp_path / 'empty').exists()
    assert len(load_dataset('mnist', root=tmp_path / 'empty', limit=3000)) == 3000  # an explicit limit wins
    assert len(load_dataset('mnist', root=tmp_path / 'empty', limit=7)) == 7
    c = load_dataset('cifar10', train=False, root=tmp_path / 'empty')
    assert isinstance(c, SyntheticCIFAR10) and len(c) == 1000 and c[0][0].shape == (3, 32, 32)


def test_quick_mode_prefers_local_real_files(tmp_path, quick_mode, capsys):
    write_synthetic_idx(tmp_path, 'MNIST', 2500, 30)  # stands for real files under root
    ds = load_dataset('mnist', root=tmp_path)
    assert isinstance(ds, Subset) and len(ds) == 2000 and Path(ds.dataset.root) == tmp_path
    assert len(load_dataset('mnist', train=False, root=tmp_path)) == 30
    assert 'synthetic' not in capsys.readouterr().out


# ---- CIFAR-10 pickles ----

def test_cifar_round_trip(tmp_path):
    folder = write_synthetic_cifar10(tmp_path, n_train=53, n_test=11, seed=2)
    assert sorted(p.name for p in folder.iterdir()) == sorted(['batches.meta', 'synthetic.md5', 'test_batch']
                                                              + [f'data_batch_{i}' for i in range(1, 6)])
    with open(folder / 'data_batch_1', 'rb') as f: entry = pickle.load(f, encoding='latin1')
    assert (entry['data'].dtype == np.uint8 and entry['data'].shape == (11, 3072) and
            len(entry['labels']) == 11)
    with open(folder / 'batches.meta', 'rb') as f:
        assert pickle.load(f, encoding='latin1')['label_names'][0] == 'airplane'
    train, test = SyntheticCIFAR10(tmp_path), SyntheticCIFAR10(tmp_path, train=False)
    rows = np.concatenate([pickle.load(open(folder / f'data_batch_{i}', 'rb'),
                                       encoding='latin1')['data'] for i in range(1, 6)])
    assert train.data.shape == (53, 32, 32, 3) and len(test) == 11
    # exactly what was written
    assert np.array_equal(train.data, rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert train.data[0, 0, 0, 1] == rows[0, 1024]  # channel-major rows: the green plane starts at byte 1024
    assert train.classes[9] == 'truck' and train.class_to_idx['cat'] == 3
    x, y = SyntheticCIFAR10(tmp_path, transform=make_transform())[0]
    assert x.shape == (3, 32, 32) and -1 <= x.min() and x.max() <= 1 and y == train.targets[0]


def test_cifar_corrupt_or_missing_files(tmp_path, full_mode):
    folder = write_synthetic_cifar10(tmp_path, 20, 10)
    with pytest.raises(ValueError, match='download must be False'): SyntheticCIFAR10(tmp_path, download=True)
    # the real class refuses the synthetic files, and load_dataset says why
    with pytest.raises(RuntimeError, match='not the official files'):
        load_dataset('cifar10', root=tmp_path, download=False)
    b = folder / 'data_batch_3'
    b.write_bytes(b.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match='corrupted'):
        SyntheticCIFAR10(tmp_path)  # torchvision's own md5 check
    (folder / 'synthetic.md5').unlink()
    with pytest.raises(FileNotFoundError, match='write_synthetic_cifar10'): SyntheticCIFAR10(tmp_path)


# ---- loaders and splits ----

def test_device_loader_needs_tensors_and_valid_sizes(tmp_path):
    write_synthetic_idx(tmp_path, 'MNIST', 20, 10)
    with pytest.raises(TypeError, match='make_transform'):
        DeviceLoader(datasets.MNIST(tmp_path), device='cpu')
    with pytest.raises(ValueError, match='empty'):
        DeviceLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0)), device='cpu')
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match='batch_size'):
            DeviceLoader(TensorDataset(torch.zeros(3, 2), torch.zeros(3)), bad, device='cpu')


def test_device_loader_matches_data_loader(tmp_path):
    write_synthetic_idx(tmp_path, 'MNIST', 95, 10)
    ds = datasets.MNIST(tmp_path, transform=make_transform())
    dl, dev = DataLoader(ds, batch_size=20), DeviceLoader(ds, batch_size=20, device='cpu')
    assert len(dl) == len(dev) == 5
    for (a, ya), (b, yb) in zip(dl, dev, strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    torch.manual_seed(0); ys = torch.cat([y for _, y in DeviceLoader(ds, 20, shuffle=True, device='cpu')])
    assert sorted(ys.tolist()) == sorted(ds.targets.tolist())


def test_flatten_transform_survives_worker_processes(tmp_path):
    write_synthetic_idx(tmp_path, 'MNIST', 20, 10)
    ds = datasets.MNIST(tmp_path, transform=make_transform(flatten=True))
    # A spawned worker, as on Windows and macOS (and Python 3.14's forkserver on Linux), gets the dataset
    # pickled and
    # imports what it names: a lambda in the transform fails here. A forked one (Linux's default until Python
    # 3.14)
    # inherits the parent's memory, so a lambda passed (checked), and Python 3.12 warns about forking a
    # threaded process.
    loader = DataLoader(ds, batch_size=8, num_workers=1, multiprocessing_context='spawn')
    xb, _ = next(iter(loader))
    assert xb.shape == (8, 784) and torch.equal(xb, torch.stack([ds[i][0] for i in range(8)]))


def test_train_val_split_errors():
    ds = TensorDataset(torch.arange(10))
    assert [len(s) for s in train_val_split(ds, 3)] == [7, 3]
    with pytest.raises(ValueError, match='empty'): train_val_split(ds, 0.01)
    with pytest.raises(TypeError, match='val_fraction'): train_val_split(ds, None)


def test_an_empty_dataset_says_what_to_check():
    from torch.utils.data import TensorDataset
    empty = TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match='a dataset with no items: check what built it .*a limit of 0'):
        DeviceLoader(empty, batch_size=10, device='cpu')
