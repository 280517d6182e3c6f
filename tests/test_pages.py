"""The docs site's pages as a browser shows them (issue 23): every notebook nbdev's pre-render step processed
into _proc/ (tools/docs_check.py; tools/test.sh runs it first) is rendered to HTML with nbconvert and the
site's CSS (tools/render_pages.py), with the cell options and markdown outputs Quarto honours, opened in
headless Chromium, and checked for broken or missing pictures, empty outputs, error text, cell options or raw
attribute text on show, and
links to pages or anchors that do not exist. Quarto renders the real site in the docs workflow."""
import json, re, shutil, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from render_pages import page_names, page_problems, render  # noqa: E402
from test_jupyterlab import BROWSER_REQUIRED, CHROMEDRIVER, CHROMIUM, headless_chromium  # noqa: E402

PROC = ROOT / '_proc'
OFFLINE = '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost'


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER and shutil.which('pandoc')):
        message = ('no chromium, chromedriver or pandoc: apt-get install chromium chromium-driver pandoc '
                   '(tools/setup.sh does)')
        if BROWSER_REQUIRED: pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip('selenium')
    # offline, as these machines are: a name lookup fails at once, instead of each page waiting for Colab's
    # badge
    with headless_chromium(tmp_path_factory.mktemp('chromium'), OFFLINE) as driver: yield driver


def fresh_proc() -> Path:
    """_proc/ as tools/docs_check.py left it, refused when a notebook changed after it (its pages would be
    stale)."""
    if not PROC.is_dir():
        pytest.fail('_proc/ not found: run `python tools/docs_check.py` (the docs pre-render step) first')
    stale = [p.name for p in (ROOT / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts
             and (PROC / p.relative_to(ROOT / 'nbs')).exists()
             and p.stat().st_mtime > (PROC / p.relative_to(ROOT / 'nbs')).stat().st_mtime]
    if stale: pytest.fail(f'_proc/ is older than {", ".join(stale)}: run `python tools/docs_check.py` again')
    return PROC


@pytest.mark.long
def test_every_page_reads_cleanly_in_a_browser(browser, tmp_path):
    proc = fresh_proc()
    render(tmp_path / 'site', proc)
    names = page_names(proc)
    assert {'index.ipynb', '02_fc_vs_cnn.ipynb', 'results.ipynb', 'api/train.ipynb'} <= set(names), names
    problems = {}
    for notebook, page in names.items():
        found = page_problems(browser, tmp_path / 'site' / page,
                              json.loads((proc / notebook).read_text(encoding='utf-8')))
        if found: problems[page] = found
    assert problems == {}


PNG_1x1 = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')


# nbconvert, on the planted result without data
@pytest.mark.filterwarnings('ignore:Your element with mimetype')
def test_the_page_check_finds_what_a_reader_would_meet(browser, tmp_path):
    """Planted: a broken picture, a picture the page leaves out, empty outputs, error text, a dead link and a
    dead anchor."""
    ids = iter(range(100))
    def code(*outputs):
        return {'cell_type': 'code', 'id': f'c{next(ids)}', 'execution_count': 1, 'metadata': {},
                'source': 'x',
                                'outputs': list(outputs)}
    def md(text): return {'cell_type': 'markdown', 'id': f'm{next(ids)}', 'metadata': {}, 'source': text}
    picture = (lambda data: {'output_type': 'display_data', 'metadata': {},
                             'data': {'image/png': data, 'text/plain': '<Figure>'}})
    front = lambda name: {'cell_type': 'raw', 'id': name.split('.')[0], 'metadata': {},
                          'source': f'---\noutput-file: {name}\ntitle: {name}\n---\n'}
    good = {'cells': [front('good.html'), md('## Here\n\n[Bad](bad.ipynb)'), code(picture(PNG_1x1))],
            'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    bad = {'cells': [front('bad.html'),
                     md('[a page that is not there](nowhere.ipynb), [an anchor that is not '
                        'there](good.ipynb#nothing), [an anchor that is](good.ipynb#here)'),
                     code(picture('bm90IGEgcGljdHVyZQ==')),  # "not a picture"
                     code({'output_type': 'stream', 'name': 'stdout', 'text': ''}),
                     code({'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},
                           'data': {}}),
                     code({'output_type': 'stream', 'name': 'stderr',
                           'text': 'Traceback (most recent call last):\n  File "x"\nValueError: no\n'})],
           'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    proc = tmp_path / 'proc'
    proc.mkdir()
    for name, nb in (('good.ipynb', good), ('bad.ipynb', bad)): (proc / name).write_text(json.dumps(nb))
    render(tmp_path / 'site', proc)
    assert page_problems(browser, tmp_path / 'site' / 'good.html', good) == []
    # a picture the page leaves out: the notebook it is checked against holds one more than the page was made
    # from
    holds_two = dict(bad, cells=bad['cells'] + [code(picture(PNG_1x1))])
    problems = page_problems(browser, tmp_path / 'site' / 'bad.html', holds_two)
    assert problems[0].startswith('a broken image (data:image/png;base64,bm90')
    assert problems[1:] == ['shows 1 of the 2 pictures its notebook holds', '2 empty outputs',
                            "error text: 'Traceback (most recent call last)'",
                            'a link to a page that does not exist: nowhere.html',
                            'a link to an anchor that does not exist: good.html#nothing'], problems


SHOW_DOC = ('---\n\n[source](https://example.com/x.py#L1){target="_blank" style="float:right; '
            'font-size:smaller"}\n\n### f\n\n> f (x)\n')


def test_the_page_check_finds_cell_options_and_raw_attributes(browser, tmp_path):
    """A show_doc cell as nbdev leaves it: its options and source link must not show on the page, as Quarto
    shows it."""
    cell = {'cell_type': 'code', 'id': 'sd', 'execution_count': 1, 'metadata': {},
            'source': '#| echo: false\n#| output: asis\nshow_doc(f)',
            'outputs': [{'output_type': 'execute_result', 'execution_count': 1, 'metadata': {},
                         'data': {'text/markdown': SHOW_DOC, 'text/plain': '<show_doc>'}}]}
    hidden = {'cell_type': 'code', 'id': 'h', 'execution_count': 1, 'metadata': {},
              'source': '#| include: false\nsecret = 1',
              'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': 'not on the page\n'}]}
    nb = {'cells': [cell, hidden], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    proc = tmp_path / 'proc'
    proc.mkdir()
    (proc / 'sd.ipynb').write_text(json.dumps(nb))
    render(tmp_path / 'plain', proc, quarto=False)  # nbconvert alone: what the pages showed before
    problems = page_problems(browser, tmp_path / 'plain' / 'sd.html', nb)
    assert problems == ["a cell option on show: '#| echo: false'",
                        "a cell option on show: '#| include: false'",
                        'raw attribute text: \'{target="_blank" style="float:right; '
                        'font-size:smaller"}\''], problems
    render(tmp_path / 'site', proc)
    assert page_problems(browser, tmp_path / 'site' / 'sd.html', nb) == []
    page = (tmp_path / 'site' / 'sd.html').read_text()
    assert (re.search(r'<a href="https://example.com/x.py#L1"[^>]* target="_blank"', page) and
            'not on the page' not in page)
