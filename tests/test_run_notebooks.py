"""tools/run_notebooks.py: notebooks in a real Jupyter kernel fail on what a student would read as a fault,
and only then."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip('jupyter_client')
pytest.importorskip('ipykernel')


def write_notebook(path, *cells):
    "A notebook of code cells, as Jupyter saves one."
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {},
                     'outputs': [], 'source': src} for i, src in enumerate(cells)],
          'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path.write_text(json.dumps(nb))
    return path


def test_faults_a_front_end_shows_fail_and_a_clean_notebook_passes(tmp_path):
    clean = write_notebook(tmp_path / 'clean.ipynb',
        '#| eval: false\nraise RuntimeError("a Colab-only cell: skipped, as nbdev_test skips it")',
        'from cnn_course.core import is_quick, live_output\nassert is_quick()   # CNN_COURSE_QUICK=1',
        'from cnn_course.viz import LivePlot\nimport numpy as np, torch\nfrom torch import nn, optim\n'
        'from cnn_course.train import fit\nfrom torch.utils.data import DataLoader, TensorDataset\n'
        'x = torch.randn(40, 4); data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=20)\n'
        'plot = LivePlot()\nnet = nn.Linear(4, 2)\n'
        "fit(net, optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(), 2, data, data, 'cpu', "
        "np.zeros((0, 5)), progress=False, callbacks=[plot])\n"
        'assert plot.handle is not None   # drawn: a kernel has a display')
    # the planted fault of lesson 3's bug: a cell that fails only where the plot is live, which nbdev_test
    # never sees
    live_only = write_notebook(tmp_path / 'live_only.ipynb',
        'from cnn_course.core import live_output\nif live_output(): raise NameError("only in a front end")')
    # written to the process's stderr below Python, as PyTorch's C++ log lines are (the kernel forwards them)
    printed = write_notebook(tmp_path / 'printed.ipynb', 'import os, time\n'
                             'os.write(2, b"ERROR: something a student reads as a failure\\n"); '
                             'time.sleep(0.5)')
    warned = write_notebook(tmp_path / 'warned.ipynb', 'import warnings\nwarnings.warn("this looks broken")')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_notebooks.py'), '--workers', '1',
                        *map(str, (clean, live_only, printed, warned))], capture_output=True, text=True,
                        env=env,
                       timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    status = {Path(l.split()[-1]).stem: l.split()[0] for l in lines if l.startswith(('ok', 'FAIL'))}
    assert status == {'clean': 'ok', 'live_only': 'FAIL', 'printed': 'FAIL', 'warned': 'FAIL'}, r.stdout
    assert 'NameError: only in a front end' in r.stdout and 'ERROR: something' in r.stdout
    assert 'UserWarning: this looks broken' in r.stdout and '1 of 4 notebooks ran clean' in r.stdout
    # and a clean one alone passes, with exit status 0 (the faulty one left out with --except is not run; an
    # API page,
    # left to the docs step, neither). `plain` needs no PyTorch: a kernel that imports it costs seconds. It
    # leaves a
    # folder in the temp folder for its exit handler to remove, as quick mode's synthetic data does, which a
    # killed
    # kernel never runs: the folder must go all the same.
    plain = write_notebook(tmp_path / 'plain.ipynb',
                           'import math\nassert math.isclose(math.tau, 2 * math.pi)',
                           'import atexit, shutil, tempfile\n'
                           'folder = tempfile.mkdtemp(); atexit.register(shutil.rmtree, folder)\n'
                           f'open({str(tmp_path / "folder.txt")!r}, "w").write(folder)')
    api = write_notebook(tmp_path / 'api.ipynb', 'from nbdev.showdoc import show_doc\nfrom math import '
                                                 'isclose',
                         'show_doc(isclose)')
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'run_notebooks.py'), str(plain), str(warned),
                        str(api),
                        '--except', str(warned), '--except-docs-only'], capture_output=True, text=True,
                        env=env, timeout=300)
    assert r.returncode == 0 and '1 of 1 notebooks ran clean' in r.stdout, r.stdout + r.stderr
    assert ('warned' not in r.stdout and 'left to the docs step' in r.stdout and
            'api.ipynb' in r.stdout), r.stdout
    left = Path((tmp_path / 'folder.txt').read_text())
    assert left.is_absolute() and not left.exists(), f'the kernel left {left} behind'


def test_the_notebooks_left_to_the_docs_step_are_run_there(tmp_path, monkeypatch):
    """--except-docs-only leaves out a notebook only if nbdev's docs step (tools/docs_check.py) executes
    every cell of it: the API pages (imports and show_doc). nbdev's own processing of such a notebook fails
    on an error in any
    of them."""
    sys.path.insert(0, str(ROOT / 'tools'))
    from run_notebooks import docs_only
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    imports = ('#| hide\nfrom functools import partial\nfrom nbdev.showdoc import show_doc\nfrom '
               'cnn_course.core import torch_seed')
    page = write_notebook(tmp_path / 'page.ipynb', imports, 'show_doc(torch_seed)')
    broken = write_notebook(tmp_path / 'broken.ipynb', imports, 'show_doc(torch_seeed)')
    assert docs_only(page) and docs_only(broken)
    assert (not docs_only(write_notebook(tmp_path / 'more.ipynb', imports, 'show_doc(torch_seed)',
                                         'torch_seed(1)')))
    assert not docs_only(write_notebook(tmp_path / 'no_docs.ipynb', imports))   # nbdev executes nothing of it
    # a cell marked `#| exec_doc` is run by the docs step too, whatever it holds
    setup = write_notebook(tmp_path / 'setup.ipynb', imports, '#| hide\n#| exec_doc\nseed = '
                                                              'partial(torch_seed)', 'show_doc(seed)')
    bad_setup = write_notebook(tmp_path / 'bad_setup.ipynb', imports,
                               '#| exec_doc\nseed = partial(torch_seeed)', 'show_doc(torch_seed)')
    assert docs_only(setup) and docs_only(bad_setup)
    # the pages it is for
    assert [p.name for p in (ROOT / 'nbs' / 'api').glob('*.ipynb') if not docs_only(p)] == []
    monkeypatch.chdir(ROOT)   # nbdev reads settings.ini
    FilterDefaults()(read_nb(page)); FilterDefaults()(read_nb(setup))
    with pytest.raises(Exception, match='torch_seeed'): FilterDefaults()(read_nb(broken))
    with pytest.raises(Exception, match='torch_seeed'): FilterDefaults()(read_nb(bad_setup))
