"""The plotting helpers in a script and in a notebook: `plt.savefig` right after one saves what it drew;
Jupyter draws it once; titles stay readable."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
import matplotlib.pyplot as plt
from PIL import Image
from torch.utils.data import TensorDataset

from cnn_course.data import DeviceLoader, FASHION_MNIST_CLASSES, CIFAR10_CLASSES
from cnn_course import viz

ROOT = Path(__file__).resolve().parents[1]
HISTORY = np.array([[1, 2.0, 0.3, 1.9, 0.35], [2, 1.5, 0.5, 1.6, 0.5], [3, 1.2, 0.6, 1.5, 0.55]])


class Labelled(TensorDataset):
    "A small image set that names its classes, as torchvision's datasets do."
    def __init__(self, x, y, classes): super().__init__(x, y); self.classes = list(classes)


def loader(channels=1, size=28, classes=FASHION_MNIST_CLASSES, n=60):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    return DeviceLoader(Labelled(x, torch.arange(n) % 10, classes), batch_size=n, device='cpu')


class Guess(nn.Module):
    "A 'model' that always predicts class `k`: every other image is a mistake."
    def __init__(self, k): super().__init__(); self.k = k; self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x): return nn.functional.one_hot(torch.full((len(x),), self.k), 10).float() + self.w


def not_blank(path):
    "The share of pixels that are not white: a blank figure has none."
    a = np.asarray(Image.open(path).convert('L'))
    return (a < 245).mean()


HELPERS = {
    'evaluate_history': lambda: viz.evaluate_history(HISTORY),
    'compare_histories': lambda: viz.compare_histories({'a': HISTORY, 'b': HISTORY[:2]}),
    'show_images_labels': lambda: viz.show_images_labels(loader(), None, None, None),
    'show_images_labels with a model': lambda: viz.show_images_labels(loader(), None, Guess(9), 'cpu'),
    'show_filters': lambda: viz.show_filters(nn.Conv2d(1, 8, 3)),
    'show_feature_maps': lambda: viz.show_feature_maps(nn.Conv2d(1, 4, 3), loader().x[0]),
    'show_rgb_channels': lambda: viz.show_rgb_channels(torch.rand(3, 16, 16)),
    'plot_confusion_matrix': lambda: viz.plot_confusion_matrix(loader(), None, Guess(2), 'cpu'),
    'show_misclassified': lambda: viz.show_misclassified(loader(), None, Guess(2), 'cpu'),
    'plot_activation_stats': lambda: viz.plot_activation_stats(watched()),
    'plot_activation_hists': lambda: viz.plot_activation_hists(watched()),
    'show_heatmaps': lambda: viz.show_heatmaps(loader().x[:6], torch.rand(6, 28, 28), ['a:b'] * 6),
    'explain_figure': lambda: viz.explain_figure(torch.rand(1, 28, 28), torch.rand(28, 28),
                                                 [('Coat', 0.7), ('Shirt', 0.2)]),
}


def watched():
    "An `ActivationStats` after a short real training run (lesson 8's callback), for its plots."
    from cnn_course.hooks import ActivationStats
    from cnn_course.train import fit
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                        nn.Linear(16, 10))
    stats = ActivationStats()
    fit(net, torch.optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 2, loader(n=120), None, 'cpu',
        np.zeros((0, 5)), progress=False, callbacks=[stats])
    return stats


@pytest.mark.parametrize('name', HELPERS)
def test_savefig_right_after_a_helper_saves_what_it_drew(tmp_path, name):
    plt.close('all')
    fig = HELPERS[name]()
    plt.savefig(tmp_path / 'shown.png')
    assert (isinstance(fig, viz.CourseFigure) and
            plt.gcf() is fig), 'the helper must return its figure and leave it current'
    assert not_blank(tmp_path / 'shown.png') > 0.01, f'{name}: plt.savefig saved a blank image'
    fig.savefig(tmp_path / 'returned.png')
    assert not_blank(tmp_path / 'returned.png') > 0.01
    plt.close('all')


def test_show_false_keeps_the_figure_out_of_pyplot(tmp_path):
    plt.close('all')
    fig = viz.evaluate_history(HISTORY, show=False)
    assert plt.get_fignums() == [] and len(fig.axes) == 2
    fig.savefig(tmp_path / 'x.png')
    assert not_blank(tmp_path / 'x.png') > 0.01


def test_a_blank_image_is_caught():
    "The check above can fail: a figure with nothing on it counts as blank."
    import io
    fig = plt.figure()
    buf = io.BytesIO(); fig.savefig(buf, format='png'); buf.seek(0)
    assert not_blank(buf) == 0
    plt.close('all')


@pytest.mark.parametrize('classes', [FASHION_MNIST_CLASSES, CIFAR10_CLASSES])
def test_prediction_grid_titles_stay_inside_and_apart(classes):
    "Long class names ('T-shirt/top:Ankle boot') neither overlap their neighbours nor leave the figure."
    channels, size = (1, 28) if classes is FASHION_MNIST_CLASSES else (3, 32)
    fig = viz.show_images_labels(loader(channels, size, classes, n=50), None, Guess(9), 'cpu', show=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)  # a figure out of pyplot has no renderer of its own
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    width, height = fig.bbox.width, fig.bbox.height
    assert all(b.x0 >= 0 and b.x1 <= width and b.y1 <= height for b in boxes), 'a title leaves the figure'
    overlaps = [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[i + 1:], i + 1)
                if a.overlaps(b)]
    assert not overlaps, ('titles overlap: '
                          f'{[(fig.axes[i].get_title(), fig.axes[j].get_title()) for i, j in overlaps[:3]]}')
    # nor the pictures of the row above (a two-line title in the second row once ran into the first row's
    # pictures)
    pictures = [ax.get_window_extent(renderer) for ax in fig.axes]
    covered = ([(i,
                 j) for i, b in enumerate(boxes) for j, p in enumerate(pictures) if i != j and b.overlaps(p)])
    assert not covered, ('titles over other pictures: '
                         f'{[(fig.axes[i].get_title(), j) for i, j in covered[:3]]}')
    # long names: two lines
    assert any('\n' in ax.get_title() for ax in fig.axes) == (classes is FASHION_MNIST_CLASSES)
    # and the figure says which class is which: the truth, then the prediction
    assert 'true' in fig.texts[0].get_text() and 'predicted' in fig.texts[0].get_text()


JUPYTER = """
import json, sys
from execnb.shell import CaptureShell
from execnb.nbio import new_nb, mk_cell
png, history = sys.argv[1], sys.argv[2]
nb = new_nb([mk_cell('import numpy as np, matplotlib.pyplot as plt\\n'
                     'from cnn_course.viz import evaluate_history\\n'
                     f'h = np.array({history})'),
             mk_cell('evaluate_history(h)'),
             mk_cell(f'evaluate_history(h)\\nplt.savefig({png!r})'),
             mk_cell('fig = evaluate_history(h, show=False)'),
             mk_cell('fig')])
CaptureShell().run_all(nb, exc_stop=True)
print(json.dumps([sum('image/png' in o.get('data', {}) for o in c.outputs) for c in nb.cells]))
"""


def test_jupyter_draws_a_returned_figure_once(tmp_path):
    """In a real IPython shell with the inline backend (as in Jupyter and Colab): one image per figure,
    however the cell ends."""
    pytest.importorskip('execnb')
    import json, subprocess, sys
    png = tmp_path / 'saved.png'
    # the shell picks the inline backend itself
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}
    env['PYTHONPATH'] = str(ROOT)
    r = subprocess.run([sys.executable, '-c', JUPYTER, str(png), str(HISTORY.tolist())], env=env,
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    images = json.loads(r.stdout.strip().splitlines()[-1])
    # last value, not last value, show=False (none), shown on request
    assert images == [0, 1, 1, 0, 1], images
    assert not_blank(png) > 0.01


def test_images_without_a_normalize_are_shown_in_range_with_one_note(capsys, caplog):
    # the source's convention in a plain TensorDataset: values in [-1, 1] and no Normalize to find
    data = loader(n=50)
    with caplog.at_level('WARNING', logger='matplotlib'):
        fig = viz.show_images_labels(data, None, None, None, show=False)
        fig.canvas.draw()
    shown = np.stack([ax.images[0].get_array() for ax in fig.axes])
    x = next(iter(data))[0][:, 0].numpy()
    assert np.allclose(shown, (x + 1) / 2, atol=1e-6)  # (x + 1) / 2: nothing clipped to black
    # matplotlib's line, once per image, gone
    assert not [r for r in caplog.records if 'Clipping' in r.getMessage()]
    out = capsys.readouterr().out
    assert out.count('note: ') == 1 and '[-1, 1]' in out, out  # said once for the grid
    plt.close(fig)
