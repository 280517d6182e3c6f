"""Lesson 7b's speed-run pieces inside real runs: Lookahead in `fit` and in checkpoints, the whitened stem,
TTA scores."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from cnn_course.checkpoint import load_checkpoint, save_checkpoint
from cnn_course.core import torch_seed
from cnn_course.data import DeviceLoader
from cnn_course.speedrun import Lookahead, patch_whitening
from cnn_course.train import fit
from conftest import cli_here


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    ds = TensorDataset(x, y)
    return DeviceLoader(ds, 16, shuffle=True, device='cpu'), DeviceLoader(ds, 48, device='cpu')


def _train(callbacks, epochs=3):
    torch_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    train, val = _data()
    h = fit(net, opt, nn.CrossEntropyLoss(), epochs, train, val, 'cpu', np.zeros((0, 5)), progress=False,
            callbacks=callbacks)
    return net, h


def test_lookahead_with_alpha_one_is_plain_training():
    "alpha=1 moves the slow weights all the way: the same weights, bit for bit, as no Lookahead."
    plain, h_plain = _train([])
    la, h_la = _train([Lookahead(alpha=1.0, k=2)])
    assert np.array_equal(h_plain, h_la)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), la.state_dict().values()))


def test_lookahead_leaves_the_weights_on_its_slow_copy():
    "After a multiple of k steps the model is its slow copy; with alpha < 1 training differs from plain."
    cb = Lookahead(alpha=0.5, k=3)  # 6 steps an epoch: every epoch ends on a move
    net, _ = _train([cb])
    floats = [t for t in net.state_dict().values() if t.is_floating_point()]
    assert cb.steps == 18 and all(torch.equal(s, t) for s, t in zip(cb.slow, floats))
    plain, _ = _train([])
    assert not torch.equal(plain[0].weight, net[0].weight)


def test_lookahead_state_travels_in_a_checkpoint(tmp_path):
    "Saved and loaded with the run: the next fit goes on from the saved slow weights, not the model's."
    cb = Lookahead(alpha=0.5, k=5)  # 18 steps: the last move was 3 steps before the end
    net, h = _train([cb])
    save_checkpoint(tmp_path / 'last.pt', net, torch.optim.SGD(net.parameters(), lr=0.1), None, h, [cb])
    fresh = Lookahead(alpha=0.5, k=5)
    load_checkpoint(tmp_path / 'last.pt', callbacks=[fresh])
    assert fresh.steps == 15 + 3 and all(torch.equal(a, b) for a, b in zip(fresh.slow, cb.slow))
    assert not all(torch.equal(a, b) for a, b in zip(cb.slow, net.state_dict().values()))


def test_lookahead_refuses_slow_weights_of_another_model():
    cb = Lookahead()
    cb.load_state_dict({'steps': 5, 'slow': [torch.zeros(3)]})
    with pytest.raises(ValueError, match='another model'):
        _train([cb])


@pytest.mark.parametrize('args, said', [(dict(alpha=0), 'alpha=0'), (dict(alpha=1.5), 'alpha=1.5'),
                                        (dict(k=0), 'k=0'), (dict(k=2.5), 'k=2.5')])
def test_lookahead_bad_settings_are_named(args, said):
    with pytest.raises(ValueError, match=said): Lookahead(**args)


def test_whitening_filters_of_independent_pixels_are_the_pixels_scaled():
    """Independent pixels with standard deviations 1, 2, ..., 9: the eigenvectors are the single pixels,
    so filter i picks the pixel with the i-th largest spread and divides by its deviation; then the
    negatives."""
    torch_seed(0)
    spread = torch.arange(1., 10.)
    pics = (torch.randn(20000, 9) * spread).reshape(-1, 1, 3, 3)  # one 3x3 patch each
    w = patch_whitening(pics, eps=0).reshape(18, 9)
    expected = torch.zeros(9, 9)
    expected[torch.arange(9), torch.arange(8, -1, -1)] = 1 / spread.flip(0)
    assert torch.allclose(w[:9].abs(), expected, atol=0.02), w[:9]
    assert torch.equal(w[9:], -w[:9])


def test_the_speedrun_recipe_whitens_the_stem_and_scores_with_tta(tmp_path, monkeypatch):
    """recipe('speedrun94'): the stem's first 18 filters are the whitening filters of the first training
    pictures, the rest as drawn; the final scores average the five test-time views."""
    from cnn_course.runs import make_run, recipe, score_run
    from cnn_course.speedrun import patch_whitening
    monkeypatch.setenv('CNN_COURSE_QUICK', '1')  # the stand-in if Fashion-MNIST is not here
    cfg = recipe('speedrun94', epochs=1, limit_train=600, limit_test=200, data_root=str(tmp_path))
    torch_seed(cfg.seed)
    run = make_run(cfg)
    stem = run.net.features[0][0].weight.detach()
    assert torch.equal(stem[:18], patch_whitening(run.train_loader.x[:5000]))
    torch_seed(cfg.seed)
    drawn = make_run(recipe('speedrun94', whiten=False, epochs=1, limit_train=600, limit_test=200,
                            data_root=str(tmp_path))).net.features[0][0].weight.detach()
    assert torch.equal(stem[18:], drawn[18:]) and not torch.equal(stem[:18], drawn[:18])
    with_views, plain = score_run(run), score_run(make_run_like(run, tta=False))
    assert with_views['tta'] and not plain['tta']
    assert with_views['test_loss'] != plain['test_loss']


def make_run_like(run, **changes):
    "The same built run (model and loaders) with config settings changed."
    import dataclasses
    return dataclasses.replace(run, config=dataclasses.replace(run.config, **changes))


def test_whitening_a_model_without_a_convolution_is_refused_before_any_data(tmp_path):
    from cnn_course.runs import ConfigError, RunConfig, check_config
    from cnn_course.speedrun import whiten_stem_
    with pytest.raises(ConfigError, match="whiten=True: its filters are fitted to the first convolution, "
                                          "and model='fc' has none"):
        check_config(RunConfig(model='fc', whiten=True))
    r = cli_here('train', '--model', 'fc', '--whiten', cwd=tmp_path)
    said = 'error: --whiten True: its filters are fitted to the first convolution, and --model fc has none'
    assert r.returncode == 2 and said in r.stderr, r.stderr
    with pytest.raises(ValueError, match='Linear has no convolution to whiten'):
        whiten_stem_(nn.Linear(4, 2), torch.zeros(8, 1, 3, 3))
