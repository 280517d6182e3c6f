"""Lesson 9's sharing, as its users meet it. The ONNX export answers as PyTorch does on real Fashion-MNIST
test pictures, and the check that says so catches a model that does not. `cnn-course serve` answers on
its port, refuses a taken port in one line, says in one line what to install without the share extra,
and stops on Ctrl-C. The page, driven in headless Chromium with the internet shut off, classifies an
uploaded picture as `cnn-course predict` does and answers a text file named .png with one line; the
server's log holds no traceback."""
import json, os, signal, subprocess, sys, time, urllib.request
from pathlib import Path

import onnx
import pytest
import torch

from cnn_course.cli import main
from cnn_course.data import DeviceLoader, load_dataset
from cnn_course.runs import load_run_model
from cnn_course.share import compare_onnx, export_onnx, onnx_session, preprocessing
from test_jupyterlab import BROWSER_REQUIRED, CHROMEDRIVER, CHROMIUM, free_port, headless_chromium
from test_pages import OFFLINE


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A run folder: one epoch of the fast recipe on 2,000 real Fashion-MNIST training images."
    out = tmp_path_factory.mktemp('share') / 'run'
    assert main(['train', '--recipe', 'fast', '--epochs', '1', '--limit-train', '2000', '--limit-test', '500',
                 '--no-progress', '--out', str(out)]) == 0
    return out


def test_the_onnx_export_answers_as_pytorch_on_real_test_pictures(run):
    path = export_onnx(run)
    net, cfg, _ = load_run_model(run, device='cpu')
    test = DeviceLoader(load_dataset('fashion-mnist', train=False, limit=2000), batch_size=256, device='cpu')
    check = compare_onnx(net, onnx_session(path), test)
    assert check['pictures'] == 2000 and check['largest probability gap'] < 1e-5
    assert check['class changes'] == check['near ties among them']
    # the recipe that prepares a picture travels inside the file, and beside it
    inside = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}['preprocessing']
    assert inside == preprocessing(cfg) == json.loads(path.with_suffix('.json').read_text())
    # the check is no formality: a model that differs from the export fails it
    with torch.no_grad(): net.classifier[-1].bias[0] += 5  # every picture leans towards class 0
    changed = compare_onnx(net, onnx_session(path), test)
    assert changed['class changes'] > 100 and changed['largest probability gap'] > 0.1


def serve(run, port:int) -> subprocess.Popen:
    "`cnn-course serve RUN --port PORT` as a process, as a user starts it."
    return subprocess.Popen([sys.executable, '-m', 'cnn_course.cli', 'serve', str(run), '--port', str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})


def wait_until_up(process, port:int, timeout:float=90) -> bytes:
    "The page's HTML once the server answers (a `pytest.fail` if it ended first)."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f'serve ended with {process.returncode}: {process.stderr.read()}')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=2) as r: return r.read()
        except OSError: time.sleep(0.3)
    pytest.fail(f'serve did not answer on port {port} within {timeout} s')


def stop(process) -> tuple:
    "Ctrl-C, as a terminal sends it; `(exit status, stdout, stderr)`."
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_serve_without_the_share_extra_says_what_to_install(run):
    code = ("import sys; sys.modules['gradio'] = None; from cnn_course.cli import main; "
            "sys.exit(main(['serve', sys.argv[1], '--port', sys.argv[2]]))")
    r = subprocess.run([sys.executable, '-c', code, str(run), str(free_port())], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr == ("cnn-course: error: serve: gradio is not installed: pip install 'cnn_course[share]' "
                        'installs it\n')


def upload(driver, path:Path, answer:str, timeout:float=60) -> str:
    "Upload `path` on the page; the text of the page element `answer` once it shows something."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    for clear in driver.find_elements(By.CSS_SELECTOR, '#photo button[aria-label=Clear]'): clear.click()
    WebDriverWait(driver, timeout, 0.2).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#photo input[type=file]'))[0].send_keys(str(path))
    return WebDriverWait(driver, timeout, 0.2).until(lambda d: d.find_element(By.CSS_SELECTOR, answer).text)


@pytest.mark.long
def test_serve_in_a_browser_classifies_as_predict_does_and_stops_on_ctrl_c(run, tmp_path, capsys):
    """One server for all of it (each start loads Gradio and the model): it answers on its port, refuses a
    second server there, classifies a real picture as `cnn-course predict` does and a text file named .png
    with one line, and Ctrl-C stops it."""
    if not (CHROMIUM and CHROMEDRIVER):
        message = 'no chromium/chromedriver: apt-get install chromium chromium-driver (tools/setup.sh does)'
        if BROWSER_REQUIRED: pytest.fail(message)
        pytest.skip(message)
    picture, text = tmp_path / 'test-7.png', tmp_path / 'not-a-picture.png'
    load_dataset('fashion-mnist', train=False, transform=lambda p: p)[7][0].resize((112, 112)).save(picture)
    text.write_text('hello, I am not a picture\n')
    capsys.readouterr()
    assert main(['predict', str(run), str(picture), '--device', 'cpu']) == 0
    predicted = capsys.readouterr().out.split(': ', 1)[1].split(' ')[0]  # "test-7.png: Shirt 17.6%, ..."
    port = free_port()
    server = serve(run, port)
    try:
        assert b'<html' in wait_until_up(server, port).lower()
        command = [sys.executable, '-m', 'cnn_course.cli', 'serve', str(run), '--port', str(port)]
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        with headless_chromium(tmp_path, OFFLINE + ' , EXCLUDE 127.0.0.1') as driver:
            driver.get(f'http://127.0.0.1:{port}/')
            shown = upload(driver, picture, '#classes [data-testid=label-output-value]')
            refused = upload(driver, text, '#message')
    finally: status, out, err = stop(server)
    assert second.returncode == 2 and second.stderr.count('\n') == 1
    assert f'port {port} on 127.0.0.1 is already in use' in second.stderr and '--port' in second.stderr
    assert shown == predicted
    assert refused.startswith('Cannot read this picture:') and 'not-a-picture.png' in refused
    assert len(refused.splitlines()) == 1
    assert f'serving {run} at http://127.0.0.1:{port}/' in out
    assert status == 130 and 'Traceback' not in err and 'Error' not in err, err
    assert err.strip().splitlines()[-1] == 'cnn-course: serve: stopped'
