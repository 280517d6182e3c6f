"""Every lesson opens from its Colab badge and runs in a fresh Colab runtime: one guarded install cell,
nothing local."""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
LESSONS = sorted(p.name for p in NBS.glob('[0-9]*.ipynb'))
REPO_URL = 'git+https://github.com/cnn-course/cnn_course.git'
BADGE_IMG = 'https://colab.research.google.com/assets/colab-badge.svg'
COLAB = 'https://colab.research.google.com/github/cnn-course/cnn_course/blob/main/nbs/'
# Paths that exist only on a build machine. /usr/share/datasets (Debian's datasets) and /content (Colab) are
# fine.
LOCAL_PATH = re.compile(r'(?<![\w.~-])(/work\b|/tmp/|/root\b|/home/)')
MAX_BYTES = 2_000_000


def _nb(name):
    return json.loads((NBS / name).read_text(encoding='utf-8'))


def _src(cell):
    return ''.join(cell['source'])


def _directives(src):
    return {m[1].strip(): m[2].strip() for m in re.finditer(r'^#\|[ \t]*([\w-]+):?[ \t]*(.*)$', src, re.M)}


def _installs(src):
    return (re.search(r'^\s*[!%]\s*(.*\s)?pip3?\s+install\b', src, re.M) or
            re.search(r'^\s*%pip\s+install\b', src, re.M))


def test_there_are_lessons():
    assert LESSONS, 'no nbs/[0-9]*.ipynb found'


@pytest.mark.parametrize('name', LESSONS)
def test_colab_badge_in_its_own_cell_points_at_this_notebook(name):
    cells = _nb(name)['cells']
    title = next(i for i, c in enumerate(cells) if c['cell_type'] == 'markdown')
    assert re.match(r'#\s+\S', _src(cells[title])), (f'{name}: the first markdown cell must be the `# Title` '
                                                     'cell')
    url = f'{COLAB}{name}'
    badge = f'[![Open In Colab]({BADGE_IMG})]({url})'
    assert BADGE_IMG not in _src(cells[title]), (
        f'{name}: move the Colab badge out of the title cell into a markdown cell of its own '
        '(nbdev turns the title cell into front matter and drops the rest of it)')
    first_code = next((i for i, c in enumerate(cells) if c['cell_type'] == 'code'), len(cells))
    found = [i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and badge in _src(c)]
    assert found and title < found[0] < first_code, (
        f'{name}: put a markdown cell holding just\n{badge}\nright after the title cell (before any code)')
    others = ({u for c in cells for u in re.findall(r'https://colab\.research\.google\.com/github/[^)\s"]+',
                                                    _src(c))} - {url})
    assert not others, f'{name}: Colab links that do not point at this notebook: {sorted(others)}'


@pytest.mark.parametrize('name', LESSONS)
def test_one_hidden_guarded_install_cell_before_any_code(name):
    cells = _nb(name)['cells']
    installs = [i for i, c in enumerate(cells) if c['cell_type'] == 'code' and _installs(_src(c))]
    assert len(installs) == 1, (f'{name}: expected exactly one cell that runs pip install, found cells '
                                f'{[i + 1 for i in installs]}')
    i = installs[0]
    src = _src(cells[i])
    d = _directives(src)
    assert 'hide' in d and d.get('eval') == 'false', (
        f'{name}: the install cell needs `#| hide` and `#| eval: false` (skipped by nbdev_test and the docs)')
    lines = [l.strip() for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#')]
    assert (len(lines) == 1 and
            re.match(r'^!\s*\[\s*-[de]\s+/content\s*\]\s*&&\s*pip3?\s+install\b', lines[0])), (
        f'{name}: the install cell must be one line guarded by /content, e.g.\n![ -e /content ] && pip '
        f'install -q {REPO_URL}')
    # quotes aside: `"cnn_course[share] @ git+..."` installs it with an extra
    args = [a.strip('"\'') for a in re.split(r'\s+', lines[0].split('install', 1)[1].strip())]
    assert (REPO_URL in args or
            any(a.startswith(f'{REPO_URL}@')
                for a in args)), f'{name}: install this package from the repository: {REPO_URL}'
    pins = [a for a in args if re.search(r'==|>=|<=|~=|!=|[<>]', a)]
    assert not pins, (f"{name}: no version pins in the install cell (Colab has its own torch and fastcore "
                      f"2): {pins}")
    code_before = [j + 1 for j, c in enumerate(cells[:i]) if c['cell_type'] == 'code'
                   and [l for l in _src(c).splitlines() if l.strip() and not l.startswith('#|')]]
    assert not code_before, (f'{name}: the install cell must come before any code (cells {code_before} run '
                             'before it)')


@pytest.mark.parametrize('name', LESSONS)
def test_colab_metadata_survives(name):
    meta = _nb(name)['metadata']
    assert 'accelerator' in meta and 'colab' in meta, (
        f'{name}: notebook metadata lost accelerator/colab (settings.ini allowed_metadata_keys)')


def test_nbdev_clean_keeps_colab_metadata():
    import configparser
    from nbdev.clean import clean_nb
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    nb = {'cells': [],
          'metadata': {'accelerator': 'GPU', 'colab': {'provenance': []}, 'widgets': {}, 'other': 1},
          'nbformat': 4, 'nbformat_minor': 5}
    clean_nb(nb, allowed_metadata_keys=cfg['DEFAULT']['allowed_metadata_keys'].split())
    assert {'accelerator', 'colab'} <= set(nb['metadata']) and 'other' not in nb['metadata'], (
        'settings.ini needs `allowed_metadata_keys = accelerator colab` so nbdev_clean keeps the Colab '
        'runtime choice')


# Error text that a run left in an output, whatever kind of output it is (a caught error printed on purpose
# goes to stdout without these markers and is fine).
ERROR_TEXT = re.compile(r'Traceback \(most recent call last\)|^\s*ERROR\b|\b\w*(Error|Exception|Warning): ',
                        re.M)


def output_problems(cell):
    """What is wrong with a cell's stored outputs: error outputs, error text in any stream or display, outputs
    of a cell never run."""
    problems, d = [], _directives(_src(cell))
    if d.get('eval') == 'false' and cell.get('outputs'):
        problems.append('outputs stored in an `eval: false` cell')
    for o in cell.get('outputs', []):
        if o['output_type'] == 'error':
            problems.append(f"an error output ({o.get('ename')}: {o.get('evalue')})")
        texts = [''.join(o.get('text', ''))] + [''.join(v) if isinstance(v, list) else str(v)
                                               for k, v in o.get('data',
                                                                 {}).items() if not k.startswith('image/')]
        stderr = o['output_type'] == 'stream' and o.get('name') == 'stderr'
        for t in texts:
            traceback = r'Traceback \(most recent call last\)|^\s*ERROR\b'
            if m := ERROR_TEXT.search(t) if stderr else re.search(traceback, t, re.M):
                problems.append(f'error text in an output: ...{t[max(0, m.start() - 30):m.end() + 60]!r}')
    return problems


def test_output_check_finds_error_text():
    "The check below can fail: each kind of error text is caught, a caught error printed on purpose is not."
    cell = lambda src='x', **o: {'cell_type': 'code', 'source': src, 'outputs': [o]}
    assert output_problems(cell(output_type='display_data',
                                data={'text/plain': 'ERROR: Could not find `tensorboard`.'}))
    assert output_problems(cell(output_type='stream', name='stderr', text='UserWarning: something'))
    assert output_problems(cell(output_type='stream', name='stderr',
                                text='docscrape.py:259: UserWarning: Unknown section'))
    assert output_problems(cell(output_type='stream', name='stdout',
                                text='Traceback (most recent call last):\n'))
    assert output_problems(cell('#| eval: false\n%tensorboard', output_type='stream', name='stdout',
                                text='hi'))
    assert (not output_problems(cell(output_type='stream', name='stdout',
                                     text='ValueError: patience must be >= 1')))


@pytest.mark.parametrize('name', LESSONS)
def test_no_local_paths_errors_or_bulk(name):
    path = NBS / name
    assert path.stat().st_size < MAX_BYTES, (f'{name} is {path.stat().st_size / 1e6:.1f} MB: keep outputs '
                                             'small (< 2 MB)')
    problems = []
    for i, c in enumerate(_nb(name)['cells']):
        for m in LOCAL_PATH.finditer(_src(c)):
            problems.append(f'cell {i + 1} source: ...{_src(c)[max(0, m.start() - 30):m.end() + 30]!r}')
        problems += [f'cell {i + 1}: {p}' for p in output_problems(c)]
        for o in c.get('outputs', []):
            data = {k: v for k, v in o.get('data', {}).items() if not k.startswith('image/')}
            texts = [''.join(o.get('text', ''))] + [''.join(v) if isinstance(v, list) else str(v)
                                                   for v in data.values()]
            for t in texts:
                for m in LOCAL_PATH.finditer(t):
                    problems.append(f'cell {i + 1} output: ...{t[max(0, m.start() - 30):m.end() + 30]!r}')
    assert not problems, (f'{name}: machine-local paths or errors (a reader on Colab or the docs site sees '
                          'these; print paths relative to a folder, or replace the temporary folder in '
                          'messages):\n' + '\n'.join(problems[:20]))


@pytest.mark.parametrize('name', LESSONS)
def test_no_other_installs_and_export_cell_is_guarded(name):
    cells = _nb(name)['cells']
    for i, c in enumerate(cells):
        src = _src(c)
        if c['cell_type'] == 'code' and 'nbdev_export()' in src:
            d = _directives(src)
            assert d.get('eval') == 'false', (f'{name} cell {i + 1}: the nbdev_export() cell needs `#| eval: '
                                              'false`')
            assert re.search(r'^\s*if\b.*:\s*$', src, re.M), (f"{name} cell {i + 1}: guard nbdev_export() "
                                                              "(e.g. `if Path('../settings.ini').exists():`)")


# --- headline cells: their stored outputs come from a full run (issue 23)
# --------------------------------------------

HEADLINE = 'print(run_kind('  # how a headline cell starts its output


def quick_headlines(nb:dict) -> list:
    """The headline cells (those that `print(run_kind(...))`) whose stored output is not a full run's: a
    quick run's
    line, or no line at all (never run, or cleared)."""
    problems = []
    for i, cell in enumerate(nb['cells']):
        if cell['cell_type'] != 'code' or HEADLINE not in _src(cell): continue
        text = ''.join(''.join(o.get('text', '')) for o in cell.get('outputs', [])
                       if o.get('output_type') == 'stream')
        kinds = re.findall(r'^(full|quick) run\b', text, re.M)
        if not kinds or set(kinds) != {'full'}:
            problems.append(f'cell {i}: stored output from {kinds or "no run"}')
    return problems


HEADLINED = [name for name in LESSONS if any(HEADLINE in _src(c) for c in _nb(name)['cells']
             if c['cell_type'] == 'code')]


def test_some_lessons_have_headline_cells():
    assert {'01_conv_basics.ipynb', '02_fc_vs_cnn.ipynb', '03_bn_dropout.ipynb', '04_checkpointing.ipynb',
            '05_cli.ipynb', '07_resnet_augment.ipynb', '08_inside.ipynb'} <= set(HEADLINED), HEADLINED


@pytest.mark.parametrize('name', HEADLINED)
def test_headline_cells_store_a_full_run(name):
    "Refresh with `python tools/store_outputs.py nbs/NAME` (a full run), then nbdev_clean."
    assert quick_headlines(_nb(name)) == []


def test_the_headline_check_fails_on_a_quick_run():
    """The fault it guards against, planted: a headline cell re-run in quick mode, and one whose output was
    cleared."""
    nb = _nb('02_fc_vs_cnn.ipynb')
    i = next(i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code' and HEADLINE in _src(c))
    nb['cells'][i]['outputs'] = [{'output_type': 'stream', 'name': 'stdout',
                                  'text': ['quick run (quick mode: small data, few epochs) on '
                                           'colour-fashion\n']}]
    assert quick_headlines(nb) == [f"cell {i}: stored output from ['quick']"]
    nb['cells'][i]['outputs'] = []
    assert quick_headlines(nb) == [f'cell {i}: stored output from no run']


def test_each_diagram_travels_inside_its_lesson():
    "Each diagram of tools/draw_diagrams.py is a PNG attached to the markdown cell that shows it (Colab too)."
    import base64, sys
    sys.path.insert(0, str(ROOT / 'tools'))
    from draw_diagrams import DIAGRAMS
    for name, (lesson, _) in DIAGRAMS.items():
        cells = [c for c in _nb(f'{lesson}.ipynb')['cells'] if f'(attachment:{name})' in _src(c)]
        assert len(cells) == 1 and cells[0]['cell_type'] == 'markdown', (lesson, name, len(cells))
        data = base64.b64decode(cells[0].get('attachments', {}).get(name, {}).get('image/png', ''))
        assert data.startswith(b'\x89PNG\r\n\x1a\n'), f'{lesson}: no PNG attached as {name}'
