"""Lesson 8's tools: `Hooks` that always go away, `ActivationStats` against a hand computation, Grad-CAM
against
Captum's, and `cnn-course predict/evaluate --explain` end to end on real PNG and JPEG files."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

from cnn_course.hooks import ActivationStats, Hooks, NoConvolutionError, grad_cam, last_conv, saliency
from cnn_course.models import FashionCNN
from cnn_course.train import fit
from conftest import cli_here, copy_runs, quick_cli

cli = quick_cli  # quick mode, a fresh process


def test_hooks_are_removed_however_the_block_ends():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    seen, grads = [], []
    with Hooks([net[0], net[2]], lambda i, m, inputs, output: seen.append((i, tuple(output.shape)))):
        net(torch.randn(5, 4))
    assert seen == [(0, (5, 3)), (1, (5, 2))]
    net(torch.randn(5, 4))
    assert len(seen) == 2 and not net[0]._forward_hooks  # gone after the block
    with pytest.raises(RuntimeError, match='half way'):
        with Hooks([net[0]], lambda *a: None): raise RuntimeError('half way')
    assert not net[0]._forward_hooks
    with Hooks([net[2]], lambda i, m, grad_in, grad_out: grads.append(grad_out[0].shape), backward=True):
        net(torch.randn(5, 4)).sum().backward()
    assert grads == [torch.Size([5, 2])] and not net[2]._backward_hooks


def test_activation_stats_match_a_hand_computation_and_skip_validation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 50), nn.ReLU(), nn.Linear(50, 3))
    x, y = torch.randn(40, 6) * 3, torch.randint(0, 3, (40,))
    train, val = (DataLoader(TensorDataset(x, y), batch_size=10),
                  DataLoader(TensorDataset(x[:20], y[:20]), batch_size=10))
    stats = ActivationStats(sample=4, zero=0.05, bins=10, hist_max=5.0)
    # lr=0: the weights never change, so every batch's numbers can be computed again by hand
    fit(net, optim.SGD(net.parameters(), lr=0.0), nn.CrossEntropyLoss(), 2, train, val, 'cpu',
        np.zeros((0, 5)), progress=False, callbacks=[stats])
    # 4 training batches x 2 epochs; no validation batch
    assert stats.names == ['1'] and stats.means.shape == (8, 1)
    assert not net[1]._forward_hooks  # removed at the end of fit
    for b in range(4):
        a = net[1](net[0](x[10 * b:10 * b + 4])).detach().flatten()
        part = a[::4].abs()
        assert torch.allclose(stats.means[b, 0], a.mean(), atol=1e-5)
        assert torch.allclose(stats.stds[b, 0], a.std(correction=0), atol=1e-4)
        assert torch.allclose(stats.near_zero[b, 0], (part < 0.05).float().mean())
        assert torch.allclose(stats.hists[0, :, b], torch.histc(part, 10, 0, 5.0) / part.numel(), atol=1e-6)
    assert torch.equal(stats.means[:4], stats.means[4:])  # epoch 2 saw the same batches


def test_activation_stats_see_dead_and_exploding_layers():
    "Built to be unhealthy: ReLUs whose bias keeps them off, and a layer whose values are far too large."
    torch.manual_seed(0)
    x = torch.randn(256, 20); y = (x[:, 0] > 0).long()
    data = DataLoader(TensorDataset(x, y), batch_size=32)
    def watch(net):
        stats = ActivationStats(sample=32)
        fit(net, optim.SGD(net.parameters(), lr=0.0), nn.CrossEntropyLoss(), 1, data, None, 'cpu',
            np.zeros((0, 5)), progress=False, callbacks=[stats])
        return stats
    healthy = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    sick = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    sick.load_state_dict(healthy.state_dict())
    with torch.no_grad():
        sick[0].bias.fill_(-100.0)  # every unit of the first ReLU off, for any input
        # its input is all zeros now: the bias alone reaches the second ReLU, far too large
        sick[2].bias.fill_(100.0)
    h, s = watch(healthy), watch(sick)
    assert 0.2 < float(h.near_zero[:, 0].mean()) < 0.8 and float(s.near_zero[:, 0].mean()) == 1.0
    assert float(s.means[:, 1].mean()) > 20 * float(h.means[:, 1].mean())
    assert float(s.hists[0, 0].mean()) == 1.0  # the dead layer's histogram: everything in the bottom bin


def test_grad_cam_equals_captums_layer_grad_cam():
    captum = pytest.importorskip('captum.attr')
    torch.manual_seed(0)
    net = FashionCNN().train()
    images, labels = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    ours = grad_cam(net, images, labels=labels, upsample=False)
    assert net.training  # put back as it was
    net.eval()  # Captum runs the model as it finds it: in eval mode, as grad_cam did
    theirs = captum.LayerGradCam(net, last_conv(net)).attribute(images, target=labels,
                                                                relu_attributions=True)[:, 0]
    assert ours.shape == (6, 7, 7) and torch.allclose(ours, theirs.detach(), atol=1e-7)
    assert (ours > 0).any(), 'all-zero maps would make the comparison empty'
    # default class: the predicted one; upsampled to the picture
    predicted = net(images).argmax(1)
    assert torch.allclose(grad_cam(net, images), grad_cam(net, images, labels=predicted))
    assert grad_cam(net, images).shape == (6, 28, 28)


def test_grad_cam_in_bf16_and_channels_last_and_saliency():
    torch.manual_seed(0)
    net = FashionCNN().eval()
    images = torch.randn(4, 1, 28, 28)
    labels = net(images).argmax(1)
    reference = grad_cam(net, images, labels=labels)
    fast = FashionCNN().eval().to(memory_format=torch.channels_last)
    fast.load_state_dict(net.state_dict())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = grad_cam(fast, images.contiguous(memory_format=torch.channels_last), labels=labels)
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert (low - reference).abs().max() <= 0.05 * reference.max()  # bf16 has 8 bits of mantissa
    sal = saliency(net, images, labels)
    x = images.clone().requires_grad_(True)
    net(x).gather(1, labels[:, None]).sum().backward()
    assert torch.allclose(sal, x.grad.abs().amax(1))
    with pytest.raises(NoConvolutionError, match='has no convolution layer'):
        grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), images)


def test_predict_and_evaluate_explain_through_the_command(tmp_path, trained_runs):
    # lesson 3's CNN in cnn/, the flat net in fc/ (evaluate writes into them)
    copy_runs(trained_runs, tmp_path)
    pictures = tmp_path / 'pictures'
    pictures.mkdir()
    garment = Image.new('RGB', (300, 400), (240, 238, 230))
    ImageDraw.Draw(garment).rectangle([100, 40, 200, 360], fill=(30, 30, 60))
    garment.save(pictures / 'photo.jpg', quality=90)
    garment.convert('L').save(pictures / 'scan.png')
    Image.new('L', (50, 50), 90).save(pictures / 'blank.png')
    r = cli_here('predict', tmp_path / 'cnn', pictures, '--explain', cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f'{pictures / "blank.png"}: blank picture')
    for line, name in zip(lines[1:], ('photo.jpg', 'scan.png')):
        assert line.endswith(f'(explained in {pictures / name}.explain.png)'), line
        with Image.open(pictures / f'{name}.explain.png') as figure:
            assert figure.format == 'PNG' and figure.width > 600 and figure.height > 200
    assert not (pictures / 'blank.png.explain.png').exists()  # nothing to explain
    # the same heat map through the Python API, and the picture as the network sees it
    from cnn_course.runs import predict_run
    result = predict_run(tmp_path / 'cnn', [pictures / 'photo.jpg'], explain=True, device='cpu')[0]
    assert result['heat_map'].shape == (28, 28) and result['picture'].shape == (1, 28, 28)
    assert 0 <= float(result['picture'].min()) and float(result['picture'].max()) <= 1
    r = cli_here('evaluate', tmp_path / 'cnn', '--explain', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'misclassified_explained_test.png' in r.stdout
    with Image.open(tmp_path / 'cnn' / 'misclassified_explained_test.png') as gallery:
        assert gallery.width > 800
    # bad input: one clear line each, exit status 2, before any work
    for args, fragment in (
            (('predict', tmp_path / 'fc', pictures / 'photo.jpg', '--explain'), 'has no convolution layer'),
            (('predict', tmp_path / 'fc-out', pictures / 'photo.jpg', '--explain'),
             'has no convolution layer'),
            (('evaluate', tmp_path / 'fc', '--explain'), 'has no convolution layer'),
            (('predict', tmp_path / 'nothing-here', pictures / 'photo.jpg', '--explain'), 'no such folder'),
            (('predict', pictures, pictures / 'photo.jpg', '--explain'),
             'it holds no best.pt or last.pt or model.pt'),
            (('evaluate', pictures, '--explain'), 'it holds no best.pt or last.pt')):
        r = cli_here(*args, cwd=tmp_path)
        assert (r.returncode == 2 and r.stderr.startswith('cnn-course: error: ') and
                r.stderr.count('\n') == 1), r.stderr
        assert fragment in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (pictures / 'photo.jpg.explain.png').stat().st_size == 0
