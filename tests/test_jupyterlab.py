"""JupyterLab, as the README opens it (`.venv/bin/jupyter lab nbs/`): the server starts on 127.0.0.1, serves the app,
finds the lessons and the kernel, and stops when asked."""
import json, os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip('jupyterlab')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r: return r.status, r.read()


def test_jupyter_lab_serves_the_lessons(tmp_path):
    jupyter = Path(sys.executable).parent / 'jupyter'
    if not jupyter.exists(): jupyter = shutil.which('jupyter')
    port, token = free_port(), 'cnn-course-test'
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'runtime'), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'config'),
           'JUPYTER_DATA_DIR': str(tmp_path / 'data'), 'HOME': str(tmp_path)}
    server = subprocess.Popen([str(jupyter), 'lab', 'nbs/', '--no-browser', '--ip', '127.0.0.1', '--port', str(port),
                               f'--IdentityProvider.token={token}',
                               *(['--allow-root'] if os.geteuid() == 0 else [])],  # CI machines run as root
                              cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = get(f'{base}/api/status?token={token}')
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, 'JupyterLab did not answer within 60 s'
                time.sleep(0.5)
        assert status == 200
        status, page = get(f'{base}/lab?token={token}')
        assert status == 200 and b'JupyterLab' in page
        _, listing = get(f'{base}/api/contents/?token={token}')
        names = {item['name'] for item in json.loads(listing)['content']}
        assert {'00_setup.ipynb', '03_bn_dropout.ipynb', 'index.ipynb'} <= names, names
        _, lesson = get(f'{base}/api/contents/03_bn_dropout.ipynb?token={token}')
        assert json.loads(lesson)['content']['cells'], 'lesson 3 came back empty'
        _, specs = get(f'{base}/api/kernelspecs?token={token}')
        assert 'python3' in json.loads(specs)['kernelspecs']
    finally:
        server.send_signal(signal.SIGINT); server.send_signal(signal.SIGINT)  # Jupyter asks to confirm: twice
        try: server.wait(timeout=30)
        except subprocess.TimeoutExpired: server.kill(); server.wait()
    assert server.returncode is not None
