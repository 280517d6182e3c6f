"""Run a lesson in a Jupyter kernel and store every cell's outputs in the notebook: what the docs site shows.

    python tools/store_outputs.py nbs/02_fc_vs_cnn.ipynb            # a full run (not quick mode): the
    headline figures python tools/store_outputs.py nbs/00a_data.ipynb --quick        # quick mode, for
    notebooks without a headline

A full run trains as the lesson does outside the tests (its cells that print `run_kind(...)` then say "full
run"), so it takes minutes; tests/test_notebooks.py fails when a headline cell's stored output says "quick
run". The kernel runs as tools/run_notebooks.py runs it (a display, the same skipped cells), with --threads
threads. Outputs are stored only when every cell ran without an error; run nbdev_clean afterwards.
"""
import argparse, json, os, re, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import FAULT, ROOT, code_cells, execute, kernel, skip_flags  # noqa: E402


# a progress bar's line as tqdm writes it without a widget front end (a page shows it frozen at 0%: left out)
PROGRESS = re.compile(r'^.*\|\s*[\d?]+/\d+ \[[^\]]*(it/s|s/it)\]\s*$')


def is_progress_bar(data:dict) -> bool:
    "A tqdm widget (ipywidgets): a page without the widget's state shows only its text, frozen at 0%."
    text = data.get('text/plain', '')
    text = ''.join(text) if isinstance(text, list) else text
    return 'application/vnd.jupyter.widget-view+json' in data and bool(PROGRESS.match(text.strip()))


def outputs_of(messages:list) -> list:
    """A cell's kernel messages as stored notebook outputs (nbformat 4), as a front end keeps them: a display
    that was updated (a live plot) holds its last picture, and progress bars (widgets, or lines on stderr)
    are left
    out."""
    outputs, displays = [], {}
    for kind, content in messages:
        if kind == 'stream':
            text = content['text']
            if content['name'] == 'stderr':
                text = ''.join(l for l in text.splitlines(keepends=True)
                               if not PROGRESS.match(l.replace('\r', '').strip()))
            if text.strip(): outputs.append({'output_type': 'stream', 'name': content['name'], 'text': text})
        elif kind == 'execute_result':
            # a value that displayed itself (a helper's CourseFigure) leaves a result without data: an empty
            # output
            if not content['data']: continue
            outputs.append({'output_type': 'execute_result', 'data': content['data'],
                            'metadata': content['metadata'], 'execution_count': None})
        elif kind == 'display_data':
            if is_progress_bar(content['data']): continue
            outputs.append({'output_type': 'display_data', 'data': content['data'],
                            'metadata': content['metadata']})
            display_id = content.get('transient', {}).get('display_id')
            if display_id: displays[display_id] = outputs[-1]
        elif kind == 'update_display_data':
            shown = displays.get(content.get('transient', {}).get('display_id'))
            if shown is not None: shown.update(data=content['data'], metadata=content['metadata'])
    return outputs


def merged(outputs:list) -> list:
    "Consecutive stream outputs of one stream joined (as a front end stores them), texts split into lines."
    out = []
    for o in outputs:
        if (o['output_type'] == 'stream' and out and out[-1]['output_type'] == 'stream' and
            out[-1]['name'] == o['name']):
            out[-1]['text'] += o['text']
        else: out.append(dict(o))
    for o in out:
        if o['output_type'] == 'stream': o['text'] = o['text'].splitlines(keepends=True)
        elif 'data' in o:
            o['data'] = {k: v.splitlines(keepends=True) if isinstance(v, str) and not k.startswith('image/')
                            else v
                         for k, v in o['data'].items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebook', type=Path)
    p.add_argument('--quick', action='store_true', help='quick mode (small data, few epochs), as the tests '
                                                        'run it')
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                   help='threads for the kernel (default: all cores)')
    args = p.parse_args(argv)
    path = args.notebook.resolve()
    nb = json.loads(path.read_text(encoding='utf-8'))
    env = {**os.environ, 'OMP_NUM_THREADS': str(args.threads), 'MKL_NUM_THREADS': str(args.threads),
           'MPLBACKEND': 'module://matplotlib_inline.backend_inline', 'PYTHONPATH': str(ROOT)}
    env.pop('IN_TEST', None)
    if args.quick: env['CNN_COURSE_QUICK'] = '1'
    else: env.pop('CNN_COURSE_QUICK', None)
    stored, start = {}, time.perf_counter()
    with kernel(path.parent, env) as kc:
        for index, src in code_cells(path, skip_flags()):
            messages = execute(kc, src, timeout=3600)
            errors = [c for k, c in messages if k == 'error']
            if errors:
                sys.exit(f'{path.name}: cell {index} failed ({errors[0]["ename"]}: {errors[0]["evalue"]}); '
                         'nothing stored')
            outputs = outputs_of(messages)
            for o in outputs:
                text = o.get('text') or o.get('data', {}).get('text/plain', '')
                if FAULT.search(text):
                    sys.exit(f'{path.name}: cell {index} printed {FAULT.search(text)[0]!r}; nothing stored')
            stored[index] = merged(outputs)
            print(f'cell {index} done ({time.perf_counter() - start:.0f} s)', flush=True)
    for index, cell in enumerate(nb['cells']):
        if index in stored: cell['outputs'] = stored[index]
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    print(f'{path.name}: stored the outputs of {len(stored)} cells from a '
          f'{"quick" if args.quick else "full"} run in {time.perf_counter() - start:.0f} s; now run '
          'nbdev_clean')
    return 0


if __name__ == '__main__':
    sys.exit(main())
