"LivePlot in a real Jupyter kernel (one picture, updated in place each epoch) and in a plain process (nothing at all)."
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


def run_in_kernel(code):
    "Run `code` in a fresh Jupyter kernel (the installed package); the displays it made, their updates and its errors."
    jupyter_client = pytest.importorskip('jupyter_client')
    pytest.importorskip('ipykernel')
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name='python3', env={**os.environ, 'PYTHONPATH': str(REPO)})
    try:
        msg_id = kc.execute(code)
        shown, updated, errors = [], [], []
        while True:
            msg = kc.get_iopub_msg(timeout=120)
            if msg['parent_header'].get('msg_id') != msg_id: continue
            kind, content = msg['msg_type'], msg['content']
            if kind == 'display_data': shown.append(content)
            elif kind == 'update_display_data': updated.append(content)
            elif kind == 'error': errors.append(content)
            elif kind == 'status' and content['execution_state'] == 'idle': break
        return shown, updated, errors
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def assert_one_picture_updated(shown, updated, errors):
    assert not errors, errors
    assert len(shown) == 1 and len(updated) == 2  # one picture, redrawn after epochs 2 and 3
    display_id = shown[0]['transient']['display_id']
    assert all(u['transient']['display_id'] == display_id for u in updated)
    assert all(c['data']['image/png'] for c in shown + updated)


def test_in_a_jupyter_kernel_one_picture_is_updated_each_epoch():
    assert_one_picture_updated(*run_in_kernel(CODE))


def test_lesson_3s_own_liveplot_cell_runs_in_a_kernel():
    "The class as lesson 3 defines it, run from the lesson's own import cell, as Colab runs the lesson top to bottom."
    cells = [''.join(c['source']) for c in json.loads((REPO / 'nbs' / '03_bn_dropout.ipynb').read_text())['cells']
             if c['cell_type'] == 'code']
    imports = next(c for c in cells if c.startswith('import os') and 'from cnn_course.viz import' in c)
    live_plot = next(c for c in cells if c.startswith('#| export viz') and 'class LivePlot(' in c)
    assert_one_picture_updated(*run_in_kernel('\n'.join([imports, live_plot, TRAIN])))


def test_outside_a_notebook_it_draws_nothing():
    r = subprocess.run([sys.executable, '-c', CODE + '\nimport sys; print("pyplot figures:", __import__("matplotlib.pyplot").pyplot.get_fignums())'],
                       env={**os.environ, 'PYTHONPATH': str(REPO), 'MPLBACKEND': 'Agg'}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('Epoch [') == 3 and 'pyplot figures: []' in r.stdout and 'image' not in r.stdout
