#!/usr/bin/env python
"""Run every notebook in a real Jupyter kernel, as Jupyter, JupyterLab and Colab run them: a fresh kernel per
notebook, its cells in order from `nbs/` (or the notebook's folder), quick mode (CNN_COURSE_QUICK=1), one
thread per kernel.

    python tools/run_notebooks.py [--workers 2] [--except NOTEBOOK ...] [--except-docs-only] [NOTEBOOK ...]
                                                    # default: every notebook nbdev_test would run
    python tools/run_notebooks.py --workers 1 --threads 2   # as Colab's 2-core CPU runtime runs them

Unlike `nbdev_test`, which executes the code outside any front end, a kernel has a display: live plots draw
and update, `display`/`update_display` run. A notebook fails on an error, on error text in any output (a
traceback, a log line starting `ERROR:` or `USDT:`, PyTorch's GPU probe, also when written to the kernel's
stderr below Python), and on a warning printed to the cell's output, since a student reads each of these as a
fault. Cells marked `#| eval: false` (Colab's install cell, maintainers' cells) or with one of settings.ini's
`tst_flags` are skipped, as nbdev_test skips them. Exit status 0 if every notebook ran clean, else 1.
"""
from __future__ import annotations
import argparse, configparser, contextlib, functools, json, os, re, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what a student would read as a failure in a cell's output
FAULT = re.compile(r'Traceback \(most recent call last\)|^(ERROR|USDT):|gpuGetDeviceCount|\w*Warning: ', re.M)
CELL_TIMEOUT = 600


def skip_flags() -> set:
    "The cell directives nbdev_test skips: `eval: false` and settings.ini's tst_flags."
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'settings.ini')
    return set(cfg.get('DEFAULT', 'tst_flags', fallback='').split())


def default_notebooks() -> list:
    "The notebooks nbdev_test runs: every .ipynb under nbs/, except names starting with _ or ."
    return sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts)
                  and '.ipynb_checkpoints' not in p.parts)


def code_cells(path:Path, flags:set) -> list:
    "(index, source) of each code cell the run executes."
    cells = json.loads(path.read_text(encoding='utf-8'))['cells']
    out = []
    for i, cell in enumerate(cells):
        if cell['cell_type'] != 'code': continue
        src = ''.join(cell['source'])
        directives = {m[1]: m[2].strip() for m in re.finditer(r'^#\|\s*([\w-]+):?[ \t]*(.*)$', src, re.M)}
        if directives.get('eval') == 'false' or flags & set(directives): continue
        out.append((i, src))
    return out


def imports_and_show_doc(src:str) -> bool:
    "Whether a code cell's source holds nothing but imports and `show_doc(...)` calls (and comments)."
    import ast  # late: only these checks need it
    try: tree = ast.parse(src)
    except SyntaxError: return False
    def docs_only(t):
        call = t.value if isinstance(t, ast.Expr) and isinstance(t.value, ast.Call) else None
        shows = call is not None and getattr(call.func, 'id', None) == 'show_doc'
        return isinstance(t, (ast.Import, ast.ImportFrom)) or shows
    return all(docs_only(t) for t in tree.body)


def docs_only(path:Path) -> bool:
    """Whether the docs step runs the whole notebook: it shows docs, and every code cell holds nothing but
    imports and `show_doc(...)` lines, or carries nbdev's `#| exec_doc` directive (the API pages). nbdev's
    pre-render step (tools/docs_check.py) executes exactly such cells of a notebook with docs, and fails on
    an error in one, so a kernel
    would only run them a second time."""
    cells = [''.join(c['source']) for c in json.loads(Path(path).read_text(encoding='utf-8'))['cells']
             if c['cell_type'] == 'code']
    return (any(re.search(r'^show_doc', s, re.M) for s in cells)
            and all(imports_and_show_doc(s) or re.search(r'^#\|\s*exec_doc\s*$', s, re.M) for s in cells))


@contextlib.contextmanager
def kernel(cwd, # the kernel's working folder
           env:dict, # its environment
           stderr=None, # where its own log goes (None: this process's stderr)
          ):
    """A fresh Jupyter kernel (python3) for the `with` block: its client, shut down afterwards however the
    block ends."""
    from jupyter_client.manager import KernelManager  # late: only a run needs it
    # The kernel is killed at the end (asking it to exit costs a second or more per notebook), so it never
    # runs its exit
    # handlers: what it leaves in the temp folder (quick mode's synthetic data, 4 MB a lesson) goes with a
    # folder of its own.
    with tempfile.TemporaryDirectory(prefix='run_notebooks_') as scratch:
        # Unix sockets in that folder, not TCP ports: a port the client picked as free can be taken by another
        # process
        # before the kernel binds it (it happened once, to a kernel's heartbeat)
        km = KernelManager(kernel_name='python3', transport='ipc', ip=str(Path(scratch) / 'kernel'))
        km.start_kernel(cwd=str(cwd), env={**env, 'TMPDIR': scratch}, stderr=stderr)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            yield kc
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def execute(kc, # a kernel's client, from `kernel`
            code:str, # one cell's source
            timeout:float=CELL_TIMEOUT, # seconds the cell may take
           ) -> list:
    """Run one cell; the `(msg_type, content)` of every message it sent a front end, until the kernel is idle
    again."""
    msg_id, messages = kc.execute(code), []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        if msg['parent_header'].get('msg_id') != msg_id: continue
        kind, content = msg['msg_type'], msg['content']
        if kind == 'status' and content['execution_state'] == 'idle': return messages
        messages.append((kind, content))


def run_notebook(path:str, threads:int=1) -> tuple:
    "Run one notebook in a fresh kernel with `threads` threads; (path, seconds, [problems])."
    path, start, problems = Path(path), time.perf_counter(), []
    env = {**os.environ, 'CNN_COURSE_QUICK': '1', 'OMP_NUM_THREADS': str(threads),
           'MKL_NUM_THREADS': str(threads),
           'MPLBACKEND': 'module://matplotlib_inline.backend_inline', 'PYTHONPATH': str(ROOT)}
    env.pop('IN_TEST', None)  # a front end, not nbdev_test: only CNN_COURSE_QUICK makes the lessons small
    # the kernel's own log (e.g. "running over TCP without encryption") goes to a file, shown if the notebook
    # fails
    with tempfile.TemporaryFile(mode='w+') as log:
        try:
            with kernel(path.parent, env, stderr=log) as kc:
                for index, src in code_cells(path, skip_flags()):
                    failed = False
                    for kind, content in execute(kc, src):
                        text = ''
                        if kind == 'error':
                            problems.append(f'cell {index}: {content["ename"]}: {content["evalue"]}')
                            failed = True
                        elif kind == 'stream': text = content['text']
                        elif kind in ('display_data', 'execute_result', 'update_display_data'):
                            text = content.get('data', {}).get('text/plain', '')
                        if text and FAULT.search(text):
                            line = next(l for l in text.splitlines() if FAULT.search(l))
                            problems.append(f'cell {index}: printed {line.strip()[:300]!r}')
                    if failed: break  # stop at an error, as a student would
        except Exception as e:  # a cell past its time, a kernel that died
            problems.append(f'{type(e).__name__}: {e}')
        log.seek(0)
        kernel_log = log.read().strip()
    # Lines written below Python (PyTorch's C++ log) reach the kernel's stderr, and the cell's output only
    # once the
    # kernel has begun forwarding it: read them here too, so none is missed at the start of a notebook.
    for line in kernel_log.splitlines():
        if FAULT.search(line) and not any(line.strip()[:300] in p for p in problems):
            problems.append(f'the kernel wrote {line.strip()[:300]!r}')
    if problems and kernel_log: problems.append('the kernel logged:\n' + kernel_log[-2000:])
    return str(path), time.perf_counter() - start, problems


# The notebooks that take longest in quick mode (each 30 s or more on 2 cores): started first, so that the
# workers end together (as pytest's long tests); in file order, 12_fit started last and ran alone.
LONG_FIRST = ('12_fit', '07_resnet_augment', '02_fc_vs_cnn', '04_checkpointing')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to run (default: all of nbs/)')
    p.add_argument('--workers', type=int, default=2, help='notebooks at once, one kernel each')
    # More threads add up a layer's sums in another order: a check that holds with one thread only states that
    # thread count's rounding (a gradient bound in 12_fit did, until it was run with two)
    p.add_argument('--threads', type=int, default=1, help='threads per kernel (workers x threads <= cores)')
    p.add_argument('--except', dest='left_out', nargs='+', default=[], metavar='NOTEBOOK',
                   help='notebooks not to run (e.g. because another check runs them)')
    p.add_argument('--except-docs-only', action='store_true',
                   help="leave out the notebooks the docs step runs whole: only imports and show_doc cells "
                        "(docs_only)")
    a = p.parse_args(argv)
    paths = [str(Path(n).resolve()) for n in a.notebooks] or [str(n) for n in default_notebooks()]
    left_out = {str(Path(n).resolve()) for n in a.left_out}
    if unknown := left_out - set(paths):
        p.error(f'--except {" ".join(sorted(unknown))}: not among the notebooks to run')
    paths = [n for n in paths if n not in left_out]
    if a.except_docs_only:
        docs = [n for n in paths if docs_only(Path(n))]
        if docs:
            print(f'left to the docs step, which runs each of their cells: {len(docs)} notebooks of imports '
                       f'and show_doc only ({", ".join(os.path.relpath(n, ROOT) for n in docs)})', flush=True)
        paths = [n for n in paths if n not in docs]
    paths.sort(key=lambda n: Path(n).stem not in LONG_FIRST)  # the long ones first, the rest in order
    failed = 0
    with ProcessPoolExecutor(a.workers) as pool:
        for path, seconds, problems in pool.map(functools.partial(run_notebook, threads=a.threads), paths):
            name = os.path.relpath(path, ROOT)
            print(f'{"FAIL" if problems else "ok  "} {seconds:6.1f} s  {name}', flush=True)
            for problem in problems: print(f'       {problem}', flush=True)
            failed += bool(problems)
    print(f'{len(paths) - failed} of {len(paths)} notebooks ran clean in a kernel')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
