"""LivePlot in a real Jupyter kernel (one picture, updated in place each epoch) and in a plain process
(nothing at all)."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = '''
import numpy as np, torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset
from cnn_course.train import fit
torch.manual_seed(0)
x = torch.randn(60, 8); data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=20)
net = nn.Linear(8, 2)
fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 3, data, data, 'cpu', np.zeros((0, 5)),
    progress=False, callbacks=[LivePlot()])
'''
CODE = 'from cnn_course.viz import LivePlot\n' + TRAIN


def run_in_kernel(*cells, cwd=None, env=None):
    """Run `cells` one after another in a fresh Jupyter kernel (the installed package): each cell's (displays,
    updates); the errors."""
    pytest.importorskip('jupyter_client')
    pytest.importorskip('ipykernel')
    from tools.run_notebooks import execute, kernel  # the kernel runner tools/test.sh uses for every notebook
    errors, outputs = [], []
    with kernel(cwd or REPO, {**os.environ, 'PYTHONPATH': str(REPO), **(env or {})}) as kc:
        for code in cells:
            messages = execute(kc, code, timeout=120)
            errors += [content for kind, content in messages if kind == 'error']
            outputs.append(([content for kind, content in messages if kind == 'display_data'],
                            [content for kind, content in messages if kind == 'update_display_data']))
            if errors: break
    return outputs, errors


def assert_one_picture_updated(shown, updated):
    assert len(shown) == 1 and len(updated) == 2  # one picture, redrawn after epochs 2 and 3
    display_id = shown[0]['transient']['display_id']
    assert all(u['transient']['display_id'] == display_id for u in updated)
    assert all(c['data']['image/png'] for c in shown + updated)


def test_in_a_jupyter_kernel_one_picture_is_updated_each_epoch():
    outputs, errors = run_in_kernel(CODE)
    assert not errors, errors
    assert_one_picture_updated(*outputs[-1])


def test_lesson_3_up_to_its_live_plot_runs_in_a_kernel():
    """Lesson 3's own cells, top to bottom up to its LivePlot check, in a kernel as Colab runs them (quick
    mode): the class runs from the lesson's own imports, the lesson's assertion holds in a front end too, and
    the plot redraws
    in place."""
    nb = json.loads((REPO / 'nbs' / '03_bn_dropout.ipynb').read_text())
    cells = [''.join(c['source']) for c in nb['cells']
             if c['cell_type'] == 'code' and '#| eval: false' not in ''.join(c['source'])]
    last = next(i for i, c in enumerate(cells) if 'plot = LivePlot()' in c)
    outputs, errors = run_in_kernel(*cells[:last + 1], TRAIN, cwd=REPO / 'nbs', env={'CNN_COURSE_QUICK': '1'})
    assert not errors, errors
    shown, updated = outputs[last]
    assert len(shown) == 1 and not updated   # the lesson's one-epoch run: one picture, in this front end
    # three epochs with the lesson's own class: drawn once, redrawn twice
    assert_one_picture_updated(*outputs[-1])


def test_outside_a_notebook_it_draws_nothing():
    r = subprocess.run([sys.executable, '-c', CODE + '\nimport sys; print("pyplot figures:", '
                                                     '__import__("matplotlib.pyplot").pyplot.get_fignums())'],
                       env={**os.environ, 'PYTHONPATH': str(REPO), 'MPLBACKEND': 'Agg'}, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('Epoch [') == 3 and 'pyplot figures: []' in r.stdout and 'image' not in r.stdout
