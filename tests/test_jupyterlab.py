"""JupyterLab, as the README opens it (`.venv/bin/jupyter lab nbs/`): the server starts on 127.0.0.1, serves
the app, finds the lessons and the kernel, and stops when asked; and lesson 3 run with *Run All* in headless
Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium; nothing is downloaded), read back
from the page as a student
sees it: every cell ran, the live plot drew and redrew itself, the figures are there, no error output."""
import contextlib, json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
# the cells a notebook run executes, what fails it: one rule for both runs
from run_notebooks import FAULT, code_cells, skip_flags

pytest.importorskip('jupyterlab')
TOKEN = 'cnn-course-test'
CHROMIUM, CHROMEDRIVER = shutil.which('chromium'), shutil.which('chromedriver')
# tools/test.sh (and so CI) sets this: there a missing browser is a failure, not a skipped test
BROWSER_REQUIRED = os.environ.get('CNN_COURSE_BROWSER_TEST') == 'required'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r: return r.status, r.read()


@contextlib.contextmanager
def jupyter_lab(root:Path, home:Path, env:dict=None):
    """`jupyter lab root` on 127.0.0.1 with a token and its own settings under `home`; yields its URL; stops
    it after. The server's log, and with it what its kernels write to their stderr below Python, goes to
    `home/'server.log'`."""
    jupyter = Path(sys.executable).parent / 'jupyter'
    if not jupyter.exists(): jupyter = shutil.which('jupyter')
    port = free_port()
    settings = home / 'lab-settings'
    # no "news" request to the internet, every cell kept in the page (JupyterLab otherwise leaves the cells
    # out of
    # view out of the page, and the test reads the page)
    for plugin, values in {'apputils-extension/notification': {'fetchNews': 'false',
                                                               'checkForUpdates': False},
                           'notebook-extension/tracker': {'windowingMode': 'none'}}.items():
        path = settings / '@jupyterlab' / f'{plugin}.jupyterlab-settings'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**(env or os.environ), 'JUPYTER_RUNTIME_DIR': str(home / 'runtime'),
           'JUPYTER_CONFIG_DIR': str(home / 'config'),
           'JUPYTER_DATA_DIR': str(home / 'data'), 'JUPYTERLAB_SETTINGS_DIR': str(settings),
           'JUPYTERLAB_WORKSPACES_DIR': str(home / 'workspaces'), 'HOME': str(home)}
    log = open(home / 'server.log', 'w')
    server = subprocess.Popen([str(jupyter), 'lab', str(root), '--no-browser', '--ip', '127.0.0.1', '--port',
                               str(port), f'--IdentityProvider.token={TOKEN}',
                               *(['--allow-root'] if os.geteuid() == 0 else [])],  # CI machines run as root
                              cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = get(f'{base}/api/status?token={TOKEN}')
                break
            except OSError:
                assert server.poll() is None, (home / 'server.log').read_text()
                assert time.monotonic() < deadline, 'JupyterLab did not answer within 60 s'
                time.sleep(0.5)
        assert status == 200
        yield base
    finally:
        # SIGTERM: the server shuts its kernels down and exits. (Two SIGINTs, Jupyter's "confirm with a second
        # ^C",
        # race when the machine is busy: the second can land before the first one's prompt, which then waits 5
        # s and
        # resumes, and the wait below ran out its 30 s in two tests.)
        server.terminate()
        try: server.wait(timeout=30)
        except subprocess.TimeoutExpired: server.kill(); server.wait()
        log.close()
    assert server.returncode is not None


def test_jupyter_lab_serves_the_lessons(tmp_path):
    with jupyter_lab(ROOT / 'nbs', tmp_path) as base:
        status, page = get(f'{base}/lab?token={TOKEN}')
        assert status == 200 and b'JupyterLab' in page
        _, listing = get(f'{base}/api/contents/?token={TOKEN}')
        names = {item['name'] for item in json.loads(listing)['content']}
        assert {'00_setup.ipynb', '03_bn_dropout.ipynb', 'index.ipynb'} <= names, names
        _, lesson = get(f'{base}/api/contents/03_bn_dropout.ipynb?token={TOKEN}')
        assert json.loads(lesson)['content']['cells'], 'lesson 3 came back empty'
        _, specs = get(f'{base}/api/kernelspecs?token={TOKEN}')
        assert 'python3' in json.loads(specs)['kernelspecs']


# --- the browser
# ---------------------------------------------------------------------------------------------------

# What the page shows of each cell, in the notebook's order: its prompt ("[3]:", "[*]:", "[ ]:"), the output
# areas'
# kinds (JupyterLab renders an error and stderr as application/vnd.jupyter.stderr), their text, and each
# image's data.
# `arguments[0]`: how many characters of each output's text to read.
READ_CELLS = """
const panel = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell';
return Array.from(document.querySelectorAll(panel)).map(c => ({
  code: c.classList.contains('jp-CodeCell'),
  prompt: ((c.querySelector('.jp-InputPrompt') || {}).textContent || '').trim(),
  outputs: Array.from(c.querySelectorAll('.jp-OutputArea-output')).map(o => ({
      mime: o.dataset.mimeType || '', text: o.textContent.slice(0, arguments[0])})),
  images: Array.from(c.querySelectorAll('.jp-OutputArea-output img')).map(i => i.src)}));
"""


@contextlib.contextmanager
def headless_chromium(home:Path, *arguments:str):
    """Debian's Chromium, headless, through its chromedriver (Selenium is told where: it downloads nothing),
    with `arguments`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--window-size=1400,1000', f'--user-data-dir={home / "chromium"}',
                '--disable-dev-shm-usage',  # containers have a small /dev/shm
                # Chromium's sandbox refuses to run as root
                *(['--no-sandbox'] if os.geteuid() == 0 else []), *arguments):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env={**os.environ, 'HOME': str(home)}),
                              options=options)
    try: yield driver
    finally: driver.quit()


def run_all_in_browser(driver, base:str, name:str, timeout:float=420) -> tuple:
    """Open notebook `name` in JupyterLab, wait for its kernel, choose Run > Run All Cells, and watch the
    page until no cell is queued or running. Returns the cells as the page shows them at the end, and for
    each cell every distinct
    image it showed while the notebook ran (a live plot shows several)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(f'{base}/lab/tree/{name}?token={TOKEN}')
    WebDriverWait(driver, 90, 0.3).until(lambda d: d.execute_script(
        "return document.querySelector('#jp-main-statusbar')?.textContent || ''").find('| Idle') >= 0
        and d.execute_script(READ_CELLS, 0),
        f'JupyterLab did not open {name} with an idle kernel within 90 s')
    run_menu = [m for m in driver.find_elements(By.CSS_SELECTOR, '.lm-MenuBar-item') if m.text == 'Run']
    run_menu[0].click()  # Lumino menus open on the mouse, as a student opens them: a real click, not a JS one
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, '.lm-Menu-item[data-command="runmenu:run-all"]'))[0].click()
    seen, started, deadline = {}, False, time.monotonic() + timeout
    while True:
        cells = driver.execute_script(READ_CELLS, 500)
        for i, cell in enumerate(cells):
            for src in cell['images']: seen.setdefault(i, set()).add(src)
        prompts = [c['prompt'] for c in cells if c['code']]
        busy = any('*' in p for p in prompts)
        started = started or busy or any(p not in ('[ ]:', '') for p in prompts)
        if started and not busy:
            return driver.execute_script(READ_CELLS, 10**9), seen  # every output's whole text
        assert time.monotonic() < deadline, f'{name} was still running after {timeout:.0f} s: {prompts}'
        time.sleep(0.25)


def faults(cells:list, server_log:str='') -> list:
    """What a student would read as a failure: each code cell that never ran, each error or stderr output,
    error text in any output, and error text the kernel wrote to its stderr below Python (it reaches the
    server's log, `server_log`):
    what tools/run_notebooks.py fails a notebook on, by the same pattern (`FAULT`)."""
    out = []
    for i, cell in enumerate(cells):
        if not cell['code']: continue
        if not cell['prompt'].strip('[]:').isdigit():
            out.append(f'cell {i} did not run (prompt {cell["prompt"]!r})')
        for o in cell['outputs']:
            if o['mime'] == 'application/vnd.jupyter.stderr' or FAULT.search(o['text']):
                out.append(f'cell {i} shows: {o["text"][:300]!r}')
    # the server's own records start "[I 2026-...", "[W ...": the rest of the log is what its kernels wrote
    out += [f'the kernel wrote {line.strip()[:300]!r}' for line in server_log.splitlines()
            if FAULT.search(line) and not line.startswith('[')]
    return out


def browsable(src:Path, dest:Path, *planted:tuple) -> Path:
    """A copy of notebook `src` in `dest` without the cells a notebook run skips (Colab's install cell,
    starting TensorBoard, maintainers' cells; tools/run_notebooks.py skips the same), with `planted` (index,
    source) cells
    inserted before the given cell indices."""
    nb = json.loads(src.read_text(encoding='utf-8'))
    run = {i for i, _ in code_cells(src, skip_flags())}
    cells = [dict(c, outputs=[], execution_count=None) if c['cell_type'] == 'code' else c
             for i, c in enumerate(nb['cells']) if c['cell_type'] != 'code' or i in run]
    for index, source in sorted(planted, reverse=True):
        cells.insert(index,
                     {'cell_type': 'code', 'execution_count': None, 'id': f'planted{index}', 'metadata': {},
                             'outputs': [], 'source': source})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / src.name).write_text(json.dumps(dict(nb, cells=cells)), encoding='utf-8')
    return dest / src.name


@pytest.fixture
def lab_in_browser(tmp_path):
    "A JupyterLab on a folder of notebooks, as a student's (quick mode, one thread), and a headless browser."
    if not (CHROMIUM and CHROMEDRIVER):
        message = 'no chromium/chromedriver: apt-get install chromium chromium-driver (tools/setup.sh does)'
        if BROWSER_REQUIRED: pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip('selenium')
    env = {**os.environ, 'CNN_COURSE_QUICK': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    for name in ('MPLBACKEND', 'IN_TEST'):
        env.pop(name, None)  # the kernel draws inline, as in a student's JupyterLab
    (tmp_path / 'notebooks').mkdir()
    with jupyter_lab(tmp_path / 'notebooks', tmp_path, env) as base, headless_chromium(tmp_path) as driver:
        yield tmp_path / 'notebooks', base, driver


LESSON_3 = ROOT / 'nbs' / '03_bn_dropout.ipynb'


@pytest.mark.long
def test_lesson_3_run_all_in_jupyterlab_in_a_browser(lab_in_browser):
    folder, base, driver = lab_in_browser
    path = browsable(LESSON_3, folder)
    source = json.loads(path.read_text())['cells']
    cells, seen = run_all_in_browser(driver, base, path.name)
    assert len(cells) == len(source), (len(cells), len(source))
    assert faults(cells, (folder.parent / 'server.log').read_text()) == []
    counts = [int(c['prompt'].strip('[]:')) for c in cells if c['code']]
    assert counts == list(range(1, len(counts) + 1)), counts  # every cell ran once, in order
    # the live plot: the cell that trains with the lesson's recipe drew its plot and redrew it every epoch
    # (quick mode:
    # 3 epochs), and shows one plot at the end
    trains = next(i for i, c in enumerate(source)
                  if 'history, lrs = train_fashion(net, log_dir)' in ''.join(c['source']))
    assert (len(seen.get(trains, ())) >= 3 and
            len(cells[trains]['images']) == 1), (len(seen.get(trains, ())), cells[trains])
    # the figures: every cell whose stored output holds a picture shows one in the browser too
    stored = json.loads(LESSON_3.read_text())['cells']
    with_picture = {''.join(c['source']) for c in stored if any('image/png' in o.get('data', {})
                    for o in c.get('outputs', []))}
    missing = [i for i, c in enumerate(source)
               if ''.join(c['source']) in with_picture and not cells[i]['images']]
    assert len(with_picture) >= 5 and missing == [], missing


@pytest.mark.long
def test_the_browser_check_fails_on_a_fault_only_a_front_end_shows(lab_in_browser):
    # lesson 3's old bug, planted: a cell that raises only where output is live, which nbdev_test never runs
    # into
    folder, base, driver = lab_in_browser
    # and error text written below Python, as PyTorch's C++ log writes it
    path = browsable(LESSON_3, folder, (4, 'import os; os.write(2, b"ERROR: planted below Python\\n")'),
                     (5, 'from cnn_course.core import live_output\n'
                         'if live_output(): raise NameError("only in a front end")'))
    cells, _ = run_all_in_browser(driver, base, path.name)
    found = faults(cells, (folder.parent / 'server.log').read_text())
    assert any('ERROR: planted below Python' in f for f in found), found
    assert any('NameError' in f and 'only in a front end' in f for f in found), found
    assert any('did not run' in f for f in found), found  # Run All stops at the error
