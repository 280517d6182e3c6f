"""The docs site's sources: README.md from index.ipynb, the lesson table, API pages, docstrings, docs config,
workflows."""
import configparser, importlib, importlib.util, inspect, json, re, subprocess, sys
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
COLAB = 'https://colab.research.google.com/github/cnn-course/cnn_course/blob/main/nbs/'
BADGE = '[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]'
MODULES = ['core', 'data', 'models', 'train', 'viz', 'cli']
LESSONS = sorted(p.name for p in NBS.glob('[0-9]*.ipynb'))


def _tool(name):
    "A script in tools/ imported as a module (tools/ is not a package)."
    spec = importlib.util.spec_from_file_location(name, ROOT / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _cells(path):
    return json.loads(Path(path).read_text(encoding='utf-8'))['cells']


def _src(cell):
    return ''.join(cell['source'])


def _cfg():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    return cfg['DEFAULT']


# README.md and nbs/index.ipynb

def test_readme_is_the_render_of_index():
    rendered = _tool('make_readme').render()
    assert (ROOT / 'README.md').read_text(encoding='utf-8') == rendered, (
        'README.md does not match nbs/index.ipynb. README.md is generated: edit nbs/index.ipynb, then run '
        '`python tools/make_readme.py` (`python tools/make_readme.py --check` shows the difference) and '
        'commit both.')


def _lesson_row(name):
    """The Lessons-table row nbs/index.ipynb needs for lesson `name`, from the lesson's own title and
    description."""
    md = next(_src(c) for c in _cells(NBS / name) if c['cell_type'] == 'markdown')
    title = re.search(r'^#\s+(.*?)\s*$', md, re.M)[1]
    title = re.sub(r'^Lesson\s+\d+:\s*', '', title)
    title = title[:1].upper() + title[1:]
    desc = (re.search(r'^>\s+(.*?)\s*$', md, re.M) or [None, 'what it teaches'])[1]
    m = re.match(r'(\d+)([a-z]*)_', name)
    num = f'{int(m[1])}{m[2]}' if m else name
    return f'| {num} | [{title}]({name}) | {desc} | {BADGE}({COLAB}{name}) |'


@pytest.mark.parametrize('name', LESSONS)
def test_every_lesson_has_a_row_with_its_colab_badge(name):
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    rows = [l for l in readme.splitlines() if l.startswith('|')]
    ok = any(f'{BADGE}({COLAB}{name})' in r and f'](nbs/{name})' in r for r in rows)
    assert ok, (f'nbs/{name} has no row in the Lessons table of README.md. Add this row to the Lessons table '
                'in nbs/index.ipynb, in file-name order (shorten the description to a list of what it '
                f'teaches):\n\n{_lesson_row(name)}\n\nthen run `python tools/make_readme.py` and commit '
                'nbs/index.ipynb and README.md.')


def test_lesson_table_has_no_stale_rows_and_is_in_order():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    linked = re.findall(re.escape(COLAB) + r'([^)\s]+)', readme)
    missing = [n for n in linked if not (NBS / n).exists()]
    assert not missing, (f'README.md has Colab badges for notebooks that do not exist: {missing}; remove '
                         'their rows from nbs/index.ipynb')
    assert linked == sorted(linked), ('the Lessons table in nbs/index.ipynb is not in file-name order: '
                                      f'{linked}')


def test_index_notebook_is_the_home_page():
    cells = _cells(NBS / 'index.ipynb')
    assert re.match(r'#\s+cnn_course\s*\n+>\s+\S',
                    _src(cells[0])), ('nbs/index.ipynb must start with `# cnn_course` and a `> description` '
                                      'line')
    assert not any(re.search(r'^#\|\s*default_exp', _src(c),
                             re.M) for c in cells), ('index.ipynb exports nothing')


@pytest.mark.parametrize('doc', ['README.md', 'CONTRIBUTING.md', 'bench/README.md'])
def test_markdown_files_link_to_files_that_exist(doc):
    "GitHub shows these files: each relative link must reach a file of the repository."
    text = (ROOT / doc).read_text(encoding='utf-8')
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    targets = [m[1] for m in re.finditer(r'\]\(([^)\s]+)\)', text)]
    local = [t.split('#')[0] for t in targets if not re.match(r'^([a-z][a-z0-9+.-]*:|#)', t)]
    assert local, f'{doc} has no relative link: the check would pass on anything'
    missing = [t for t in local if not ((ROOT / doc).parent / t).exists()]
    assert not missing, f'{doc} links to {missing}, which do not exist'


def test_readme_is_short_and_plain():
    """The front page: under 1,200 words, no dates, issue numbers or first person (figures live on the
    Performance page)."""
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert len(text.split()) <= 1200, (f'README.md has {len(text.split())} words: move detail to a lesson or '
                                       'a page')
    # code may say `my-photo.jpg`
    prose = re.sub(r'`[^`\n]*`', '', re.sub(r'```.*?```', '', text, flags=re.S))
    for pattern in (r'\b20\d\d-\d\d-\d\d\b', r'\bissue \d+', r'\b(I|my|me)\b'):
        assert not re.search(pattern, prose), (f'README.md: {re.search(pattern, prose)[0]!r} (see '
                                               'nbs/performance.ipynb)')
    assert '(nbs/performance.ipynb)' in text and '(nbs/results.ipynb)' in text and 'CONTRIBUTING.md' in text


# API pages and docstrings

def _module(name):
    return importlib.import_module(f'cnn_course.{name}')


def _documented(obj):
    return inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)


@pytest.mark.parametrize('mod', MODULES)
def test_api_page_shows_every_exported_name(mod):
    page = NBS / 'api' / f'{mod}.ipynb'
    assert page.exists(), f'nbs/api/{mod}.ipynb is missing: run `python tools/make_api_nb.py`'
    cells = _cells(page)
    shown = {m[1] for c in cells if c['cell_type'] == 'code'
             for m in re.finditer(r'^show_doc\((\w+)\)', _src(c), re.M)}
    noted = {m[1] for c in cells if c['cell_type'] == 'markdown'
             for m in re.finditer(r'^- `(\w+)`', _src(c), re.M)}
    # names defined in another module and re-exported here: listed, with a link to the page that documents
    # them
    elsewhere = {m[1] for c in cells if _src(c).startswith('## Also importable from here')
                 for m in re.finditer(r'`(\w+)`', _src(c))}
    noted |= elsewhere
    m = _module(mod)
    no_doc = [n for n in m.__all__ if _documented(getattr(m, n)) and n not in shown | elsewhere]
    no_note = [n for n in m.__all__ if not _documented(getattr(m, n)) and n not in shown | noted]
    assert not no_doc and not no_note, (
        f'nbs/api/{mod}.ipynb lacks a show_doc cell for {no_doc} and a constant line for {no_note}: '
        'run `python tools/make_api_nb.py` and commit nbs/api/')
    lazy = set(getattr(m, '_MOVED', {}))  # re-exported by the module's __getattr__
    extra = (shown | noted) - set(m.__all__) - lazy
    assert not extra, f'nbs/api/{mod}.ipynb documents names not in __all__: run `python tools/make_api_nb.py`'


def test_api_pages_are_up_to_date():
    mk = _tool('make_api_nb')
    assert set(mk.modules()) >= set(MODULES)
    stale = [str(f.relative_to(ROOT)) for f, text in mk.render_all().items()
             if not f.exists() or f.read_text(encoding='utf-8') != text]
    assert not stale, f'{stale} are out of date: run `python tools/make_api_nb.py` and commit nbs/api/'


def _own_doc(obj):
    "The docstring written for `obj` itself: a class's doc is not inherited nor the one @dataclass makes up."
    doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) else obj.__doc__
    doc = (doc or '').strip()
    if inspect.isclass(obj) and doc.startswith(f'{obj.__name__}('):
        return ''  # dataclass's generated signature
    return doc


@pytest.mark.parametrize('mod', MODULES)
def test_every_exported_function_and_class_has_a_docstring(mod):
    m = _module(mod)
    missing = [n for n in m.__all__ if _documented(getattr(m, n)) and not _own_doc(getattr(m, n))]
    assert not missing, (f'cnn_course.{mod}: {missing} have no docstring (one line, in the #| export cell '
                         'that defines them)')


# Docs site configuration

def test_quarto_config_is_nbdevs_website_with_our_files():
    q = yaml.safe_load((NBS / '_quarto.yml').read_text())
    assert q['project']['type'] == 'website'
    assert q['format']['html']['css'] == 'styles.css' and (NBS / 'styles.css').exists()
    assert q['metadata-files'] == ['nbdev.yml', 'sidebar.yml']
    for item in q['website']['navbar'].get('left', []):
        assert (NBS / item['href']).exists(), f"navbar links to missing {item['href']}"


def test_nbdev_yml_is_what_nbdev_writes():
    from nbdev.quarto import _nbdev_yml
    c = _cfg()
    want = _nbdev_yml.format(doc_path=Path(c['doc_path']).name,
                             **{k: c[k] for k in ('title', 'description', 'branch', 'git_url', 'doc_host',
                                                  'doc_baseurl')})
    assert (NBS / 'nbdev.yml').read_text() == want, ('nbs/nbdev.yml is stale: run `python '
                                                     'tools/docs_check.py` and commit it')


def test_sidebar_lists_every_page_in_three_sections():
    assert _cfg()['custom_sidebar'] == 'True', ('tools/docs_check.py writes nbs/sidebar.yml; nbdev must not '
                                                'overwrite it')
    contents = yaml.safe_load((NBS / 'sidebar.yml').read_text())['website']['sidebar']['contents']
    assert contents[0] == 'index.ipynb'
    sections = {s['section']: s['contents'] for s in contents[1:]}
    stale = 'nbs/sidebar.yml is stale: run `python tools/docs_check.py` and commit it'
    assert sections.get('Lessons') == LESSONS, stale
    assert sections.get('Results', [])[:2] == ['results.ipynb', 'performance.ipynb'], stale
    assert sorted(sections['Results']) == sorted(p.name for p in NBS.glob('[!0-9]*.ipynb')
                                                 if p.name != 'index.ipynb'), stale
    assert sorted(sections.get('Library reference',
                               [])) == sorted(f'api/{p.name}' for p in (NBS / 'api').glob('*.ipynb')), \
        'nbs/sidebar.yml is stale: run `python tools/docs_check.py` and commit it'


def test_generated_docs_folders_are_ignored():
    if not (ROOT / '.git').exists(): pytest.skip('not a git checkout')
    for path in ('_proc/index.ipynb', '_docs/index.html', 'nbs/_proc/index.ipynb'):
        r = subprocess.run(['git', 'check-ignore', '-q', path], cwd=ROOT)
        assert r.returncode == 0, f'{path} is not in .gitignore'


def test_crossref_rule():
    dc = _tool('docs_check')
    lib = dc.Library()
    def errors(md): return dc.check_text(lib, 'test', md, local={'my_var'})
    assert (errors('`cnn_course`, `cnn_course.core`, `cnn_course.core.get_device`, '
                   '`cnn_course.data.DATA_ROOT`') == [])
    assert errors('`python -m cnn_course.cli train`, `cnn_course.data.DeviceLoader.batch_size`') == []
    assert (errors('`fit`, `train()`, `eval()`, `show_doc`, `load_dataset(name)`, `my_var`, `batch_size`')
            == [])
    assert errors('```\n`cnn_course.nope`\n```') == []  # fenced code is not read
    assert len(errors('`cnn_course.nope`')) == 1
    assert len(errors('`cnn_course.core.nope`')) == 1
    assert len(errors('`show_nothing(x)`')) == 1  # looks like ours (`show_…`), defined nowhere
    assert 'looks like a cnn_course name' in errors('`load_everything`')[0]


# GitHub workflows

def _workflow(name):
    wf = yaml.safe_load((ROOT / '.github' / 'workflows' / name).read_text())
    wf['on'] = wf.get('on', wf.pop(True, None))  # YAML 1.1 reads a bare `on` as True
    return wf


def _steps(wf):
    return [s for job in wf['jobs'].values() for s in job.get('steps', [])]


def test_test_script_runs_docs_checks_before_pytest_last():
    lines = [l.strip() for l in (ROOT / 'tools' / 'test.sh').read_text().splitlines()
             if l.strip() and not l.startswith('#')]
    text = '\n'.join(lines)
    for cmd in ('python tools/make_readme.py --check', 'python tools/make_api_nb.py --check',
                'python tools/docs_check.py'):
        assert cmd in text and text.index(cmd) < text.index('python -m pytest'), cmd
    assert lines[-1].startswith('python -m pytest'), ("pytest's summary must be the last line tools/test.sh "
                                                      "prints")


def test_test_workflow_runs_ci_script():
    wf = _workflow('test.yaml')
    assert {'push', 'pull_request'} <= set(wf['on'])
    steps = _steps(wf)
    assert any(s.get('uses', '').startswith('actions/checkout@') for s in steps)
    py = [s for s in steps if s.get('uses', '').startswith('actions/setup-python@')]
    assert py and str(py[0]['with']['python-version']) == '3.11'
    runs = [s.get('run', '').strip() for s in steps]
    assert 'bash .ci/run' in runs, 'test.yaml must run `bash .ci/run`, as CI does'
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'bash tools/setup.sh && bash tools/test.sh' in ci
    assert ('bash tools/setup.sh && bash tools/test.sh'
            in (ROOT / 'README.md').read_text()), "the README's test command"


def test_deploy_workflow_renders_with_quarto_and_pinned_nbdev():
    wf = _workflow('deploy.yaml')
    assert wf['on']['push']['branches'] == ['main']
    steps = _steps(wf)
    runs = '\n'.join(s.get('run', '') for s in steps)
    uses = [s.get('uses', '') for s in steps]
    assert any(u.startswith('quarto-dev/quarto-actions/setup@v2') for u in uses)
    assert 'nbdev_docs' in runs
    assert re.search(r'pip install .*-e \S*\.\S* .*-c \.github/docs-constraints\.txt', runs), runs
    assert 'download.pytorch.org/whl/cpu' in runs
    assert any(u.startswith(('actions/deploy-pages@', 'peaceiris/actions-gh-pages@')) for u in uses)
    upload = [s for s in steps if s.get('uses', '').startswith('actions/upload-pages-artifact@')]
    assert upload and upload[0]['with']['path'] == '_docs' == _cfg()['doc_path']


def test_docs_constraints_pin_nbdev_2_companions():
    text = (ROOT / '.github' / 'docs-constraints.txt').read_text()
    lines = {l.split('#')[0].replace(' ', '') for l in text.splitlines()}
    assert {'nbdev==2.4.14', 'fastcore>=1.12.27,<2', 'execnb<0.2', 'ghapi<2'} <= lines, lines


# The results page (nbs/results.ipynb) against the lessons' stored outputs

def _stored_text(name, cell_start):
    "The stdout a lesson stored for its cells whose source starts with `cell_start`."
    return ''.join(''.join(o.get('text', '')) for c in _cells(NBS / name) if _src(c).startswith(cell_start)
                   for o in c.get('outputs', []) if o.get('output_type') == 'stream')


def _results_row(lesson_file):
    "The results table's rows for one lesson, as one text."
    rows = [l for l in _src(_cells(NBS / 'results.ipynb')[1]).splitlines()
            if l.startswith('| [') and f']({lesson_file})' in l]
    assert rows, f'results.ipynb has no row for {lesson_file}'
    return '\n'.join(rows)


def results_disagreements() -> list:
    """Numbers the results page gives for lessons 1 to 5 and 7 that their stored (full-run) outputs do not
    show."""
    problems = []
    lasts = re.findall(r'last epoch:  loss: [\d.]+ accuracy: ([\d.]+)',
                       _stored_text('02_fc_vs_cnn.ipynb', 'evaluate_history(history'))
    row = _results_row('02_fc_vs_cnn.ipynb')
    for model, acc in zip(('flat net', 'CNN'), lasts):
        if f'{model} **{100 * float(acc):.2f}%**' not in row:
            problems.append(f'lesson 2: {model} {float(acc):.2%} not in {row!r}')
    if len(lasts) != 2: problems.append(f'lesson 2 stores {len(lasts)} learning-curve summaries, expected 2')
    scored = _stored_text('01_conv_basics.ipynb', 'model.eval()\ncorrect, total = torch.zeros')
    lesson1 = re.search(r'test accuracy: ([\d.]+)% on', scored)
    if lesson1 is None: problems.append('lesson 1 stores no test accuracy')
    elif f'**{lesson1[1]}%** test accuracy' not in _results_row('01_conv_basics.ipynb'):
        problems.append(f'lesson 1: {lesson1[1]}% not in its row')
    overall = re.search(r'Test Accuracy \(Overall\): +\d+% \((\d+)/(\d+)\)',
                        _stored_text('04_checkpointing.ipynb', 'print(run_kind(data_name))\ntable = '
                                                               'per_class_accuracy('))
    row = _results_row('04_checkpointing.ipynb')
    if overall is None: problems.append('lesson 4 stores no overall test accuracy')
    elif f'**{100 * int(overall[1]) / int(overall[2]):.2f}%** test accuracy' not in row:
        problems.append(f'lesson 4: {int(overall[1]) / int(overall[2]):.2%} not in {row!r}')
    for lesson, what, cell_start, pattern in (
            ('03_bn_dropout.ipynb', 'source recipe', 'criterion = nn.CrossEntropyLoss()\ntest_loss, test_acc',
             r'test accuracy ([\d.]+)$'),
            ('03b_train_fast.ipynb', 'fast recipe', "print(run_kind(f'Fashion-MNIST ({len(train_set):,} "
                                                    "training images)'))\nfast_epochs",
             r'\(no smoothing\), test accuracy ([\d.]+)$')):
        found = re.search(pattern, _stored_text(lesson, cell_start), re.M)
        if found is None: problems.append(f'{lesson} stores no {what} test accuracy')
        elif f'{what}: **{100 * float(found[1]):.2f}%**' not in _results_row(lesson):
            problems.append(f'{lesson}: {what} {float(found[1]):.2%} not in its rows')
    best = re.search(r'^best \(epoch \d+\): test loss [\d.]+, test accuracy ([\d.]+) on',
                     _stored_text('05_cli.ipynb', 'print(run_kind(quick('), re.M)
    if best is None: problems.append("lesson 5 stores no test accuracy of its checkpointed run's best.pt")
    elif f'test accuracy **{100 * float(best[1]):.2f}%**' not in _results_row('05_cli.ipynb'):
        problems.append(f'lesson 5: {float(best[1]):.2%} not in its row')
    lesson7 = re.findall(r'^test (as it is|with TTA) +loss [\d.]+ accuracy ([\d.]+)',
                         _stored_text('07_resnet_augment.ipynb', "cfg = recipe('resnet')"), re.M)
    if len(lesson7) != 2:
        problems.append(f'lesson 7 stores {len(lesson7)} test accuracies of its recipe, expected 2')
    for (how, acc), words in zip(lesson7, ('test accuracy', 'with test-time augmentation')):
        if f'**{100 * float(acc):.2f}%** {words}' not in _results_row('07_resnet_augment.ipynb'):
            problems.append(f'lesson 7: {float(acc):.2%} ({how}) not in its row')
    return problems


def test_results_page_agrees_with_the_stored_runs():
    assert results_disagreements() == []


def test_the_results_check_fails_on_a_stale_number(tmp_path, monkeypatch):
    "Planted: the page says one point more than lesson 2's stored run shows for the flat net."
    page = NBS / 'results.ipynb'
    stale = json.loads(page.read_text(encoding='utf-8'))
    shown = re.search(r'\| flat net \*\*([\d.]+)%\*\*, CNN \*\*[\d.]+%\*\* \(the test set, as the source\)',
                      _results_row('02_fc_vs_cnn.ipynb'))[1]
    planted = f'flat net **{float(shown) + 1:.2f}%**'
    stale['cells'][1]['source'] = ([l.replace(f'flat net **{shown}%**', planted)
                                    for l in stale['cells'][1]['source']])
    (tmp_path / 'results.ipynb').write_text(json.dumps(stale))
    real_cells = _cells
    monkeypatch.setitem(globals(), '_cells', lambda p: real_cells(tmp_path / 'results.ipynb'
                                                                  if Path(p).name == 'results.ipynb' else p))
    problems = results_disagreements()
    assert len(problems) == 1 and problems[0].startswith(f'lesson 2: flat net {shown}% not in '), problems


def _show_doc_nb(cells):
    "A notebook of (id, source, markdown output or None) code cells, as nbs/ stores them."
    def out(md): return [{'data': {'text/markdown': md.splitlines(keepends=True), 'text/plain': 'def f()'},
                          'execution_count': None, 'metadata': {}, 'output_type': 'execute_result'}]
    return {'cells': [{'cell_type': 'code', 'id': i, 'metadata': {}, 'source': s, 'execution_count': None,
                       'outputs': out(md) if md else []} for i, s, md in cells],
            'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}


def test_show_doc_check_reports_stale_outputs_and_stores_fresh_ones(tmp_path, monkeypatch):
    """A stored show_doc output whose source line moved is reported; --store-show-doc writes the docs step's,
    minus its page links."""
    dc = _tool('docs_check')
    nbs, cache = tmp_path / 'nbs', tmp_path / '_proc'
    (nbs / 'api').mkdir(parents=True); (cache / 'api').mkdir(parents=True)
    monkeypatch.setattr(dc, 'NBS', nbs)
    site = 'https://cnn-course.github.io/cnn_course'
    old = '---\n\n[source](https://github.com/x/blob/main/cnn_course/train.py#L10)\n\n### f\n\n*Uses `fit`.*'
    new = old.replace('#L10', '#L12')
    # what the docs step's add_links makes of it
    linked = new.replace('`fit`', f'[`fit`]({site}/train.html#fit)')
    same = '---\n\n### g\n\n*Calls `evaluate`.*'
    stored = [('a1', '#| echo: false\nshow_doc(f)', old), ('a2', 'x = 1', None),
              ('a3', '# a comment first\nshow_doc(g)', same), ('a4', 'show_doc(f)\nplot(x)', old)]
    done = [('a1', '#| echo: false\nshow_doc(f)', linked), ('a2', 'x = 1', None),
            ('a3', '# a comment first\nshow_doc(g)',
             same.replace('`evaluate`', f'[`evaluate`]({site}/train.html#evaluate)')),
            ('a4', 'show_doc(f)\nplot(x)', linked)]  # a cell that computes more keeps what its own run stored
    (nbs / '01_x.ipynb').write_text(json.dumps(_show_doc_nb(stored)))
    (cache / '01_x.ipynb').write_text(json.dumps(_show_doc_nb(done)))
    # API pages are stored without outputs: left alone, even though the docs step fills them in
    (nbs / 'api' / 'm.ipynb').write_text(json.dumps(_show_doc_nb([('b1', 'show_doc(f)', None)])))
    (cache / 'api' / 'm.ipynb').write_text(json.dumps(_show_doc_nb([('b1', 'show_doc(f)', linked)])))
    problems = dc.check_show_doc(cache)
    assert (len(problems) == 1 and
            problems[0].startswith('nbs/01_x.ipynb: the stored show_doc output of 1 cell (a1)')), problems
    assert '--store-show-doc' in problems[0]
    assert dc.check_show_doc(cache, store=True) == []
    cells = {c['id']: c for c in _cells(nbs / '01_x.ipynb')}
    # the new line, without the page's link
    assert ''.join(cells['a1']['outputs'][0]['data']['text/markdown']) == new
    assert (''.join(cells['a3']['outputs'][0]['data']['text/markdown']) == same and
            cells['a2']['outputs'] == [])
    assert ''.join(cells['a4']['outputs'][0]['data']['text/markdown']) == old
    assert _cells(nbs / 'api' / 'm.ipynb')[0]['outputs'] == []
    assert dc.check_show_doc(cache) == []


def test_source_link_check_wants_the_defining_line(tmp_path):
    """A source link, on an API page or a lesson, must point at the line that defines the name: line None
    (nbdev 2.4.14's
    for a name imported from the library) and a wrong line fail."""
    dc = _tool('docs_check')
    (tmp_path / 'api').mkdir()
    lines = (ROOT / 'cnn_course' / 'core.py').read_text().splitlines()
    right = next(i for i, l in enumerate(lines, 1) if l.startswith('def torch_seed('))
    def out(line, name='torch_seed'):
        return (f'---\n\n[source](https://github.com/x/y/blob/main/cnn_course/core.py#L{line})\n\n### '
                f'{name}\n\n*Seeds.*')
    page = _show_doc_nb([('c1', 'show_doc(torch_seed)', out(right)),
                         ('c2', 'show_doc(torch_seed)', out('None')),
                         ('c3', 'show_doc(torch_seed)', out(right + 1)), ('c4', 'x = 1', None)])
    (tmp_path / 'api' / 'core.ipynb').write_text(json.dumps(page))
    lesson = _show_doc_nb([('d1', 'show_doc(torch_seed)', out(right)),
                           ('d2', 'show_doc(torch_seed)', out('None'))])
    (tmp_path / '02_lesson.ipynb').write_text(json.dumps(lesson))
    problems = dc.check_source_links(tmp_path)
    assert len(problems) == 3, problems
    assert problems[0].startswith('02_lesson.ipynb: the source link of torch_seed points at '
                                  'cnn_course/core.py line None')
    assert (problems[1].startswith('api/core.ipynb: ') and
            'torch_seed points at cnn_course/core.py line None' in problems[1])
    assert f'line {right + 1}, which does not define it' in problems[2]


def test_no_two_notebooks_make_the_same_page():
    "The site names a page after its notebook without the number: 05_cli and 15_cli would both be cli.html."
    pages = {}
    for p in sorted(NBS.glob('*.ipynb')):
        pages.setdefault(re.sub(r'^\d+[a-z]*_', '', p.stem), []).append(p.name)
    assert not {page: names for page, names in pages.items() if len(names) > 1}
