#!/usr/bin/env python
"""Run nbdev's docs pre-render step offline and check cross-references; exit 1 on any problem.

`nbdev_docs` = this pre-render step + `quarto render`. Quarto cannot be installed on the machines
this course is built on, so CI runs the step through nbdev's API (its `nbdev_docs` would try to install
Quarto):

1. `nbdev.quarto.refresh_quarto_yml()` rewrites nbs/nbdev.yml from settings.ini (nbs/_quarto.yml is
   only written if missing);
2. `nbdev.doclinks._build_modidx()` rewrites cnn_course/_modidx.py, the index doc links come from;
3. the sidebar: settings.ini has `custom_sidebar = True`, so nbs/sidebar.yml is written here:
   the home page, then a "Lessons" section (every other notebook in nbs/) and a "Library reference"
   section (nbs/api/, in module order); with `custom_sidebar = False` nbdev's own
   `nbdev_sidebar` writes it instead;
4. `nbdev.serve.proc_nbs()` processes every notebook into _proc/ the way the docs build does (front
   matter, hidden cells, and it *executes* the `show_doc` cells, exported cells and cells with
   imports); a notebook that fails to process fails the check.

tools/test.sh then checks that steps 1-3 left the committed files unchanged.

Stored `show_doc` outputs: a lesson's `show_doc` cells keep their outputs in the notebook (what GitHub and
Colab show before anything runs), with a link to the source line. Step 4 runs those cells again with the
library as it is now; a stored output that differs from that (a docstring changed, or lines moved above the
definition) is reported, and `--store-show-doc` writes the fresh outputs into nbs/ instead (run `nbdev_clean`
after it). The API pages (nbs/api/) are stored without outputs and are left alone. On every page, lesson or
API, each `show_doc` source link must point at the line that defines its name.

Cross-references, in markdown cells (outside fenced code blocks) and in the library's docstrings;
only `inline code` spans are read:

- dotted: every `cnn_course.<module>[.<name>[.<attr>]]` must name a module of cnn_course, a name
  defined at the top of that module (cnn_course/_modidx.py or a module-level assignment), and an
  attribute defined in the library;
- bare: `name` or `name(...)` is checked when it looks like one of ours: it contains an underscore
  and its first word is the first word of a name in some module's `__all__` (`show_…`, `load_…`,
  `write_synthetic_…`, `MNIST_…`, ...). It must then be defined in the library (any function,
  class, argument or variable name in cnn_course/*.py), in the same notebook's code, or be one of
  EXTERNAL_NAMES. Names without an underscore (`fit`, `CNN`) are not checked: too many of them are
  PyTorch's (`train()`, `eval()`).
"""
from __future__ import annotations
import argparse, ast, builtins, json, os, re, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT / 'cnn_course', ROOT / 'nbs'
sys.path.insert(0, str(ROOT / 'tools'))
# Names from other libraries that look like ours (`show_…`) and are fine to mention.
EXTERNAL_NAMES = {'show_doc'}
# Folders under nbs/ the lessons write into (datasets, runs): never docs.
SKIP_FOLDER_RE = r'^[_.]|^(data|runs|checkpoints)$'
_IMPORT_WARNING = 'Found cells containing imports and other code'
_SPAN = re.compile(r'`([^`\n]+)`')
_FENCE = re.compile(r'^\s*(```|~~~).*?^\s*\1', re.M | re.S)
_DOTTED = re.compile(r'(?<![\w.])cnn_course((?:\.\w+)+)')
_BARE = re.compile(r'^\s*([A-Za-z_]\w*)(\(.*\))?\s*$')


def _src(cell) -> str:
    s = cell['source']
    return ''.join(s) if isinstance(s, list) else s


def _notebooks() -> list[Path]:
    skip = re.compile(SKIP_FOLDER_RE)
    return sorted(p for p in NBS.rglob('*.ipynb')
                  if not any(skip.search(part)
                             for part in p.relative_to(NBS).parts[:-1]) and not p.name.startswith(('_', '.')))


def _identifiers(tree) -> set[str]:
    """Every name a piece of code defines or uses: functions, classes, arguments, variables, attributes,
    imports."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, ast.arg): out.add(n.arg)
        elif isinstance(n, ast.Name): out.add(n.id)
        elif isinstance(n, ast.Attribute): out.add(n.attr)
        elif isinstance(n, ast.alias): out.add((n.asname or n.name).split('.')[0])
    return out


def _code_tree(src:str):
    "A cell's code parsed, without shell/magic lines and directives; None if it does not parse."
    lines = [l for l in src.split('\n') if not l.lstrip().startswith(('!', '%', '#|'))]
    try: return ast.parse('\n'.join(lines))
    except SyntaxError: return None


class Library:
    "What cnn_course defines, read from its source and cnn_course/_modidx.py (nothing is imported)."
    def __init__(self):
        idx = {}
        exec((LIB / '_modidx.py').read_text(encoding='utf-8'), idx)
        self.syms = {s for mod in idx['d']['syms'].values() for s in mod}
        self.toplevel, self.alls, self.identifiers, self.docstrings = {}, {}, set(), []
        for p in sorted(LIB.glob('*.py')):
            if p.stem == '_modidx': continue
            tree = ast.parse(p.read_text(encoding='utf-8'))
            names = set()
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                        if isinstance(t, ast.Name):
                            names.add(t.id)
                            if t.id == '__all__': self.alls[p.stem] = list(ast.literal_eval(node.value))
            self.toplevel['' if p.stem == '__init__' else p.stem] = names
            self.identifiers |= _identifiers(tree)
            for node in ast.walk(tree):
                if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and
                    (doc := ast.get_docstring(node))):
                    self.docstrings.append((f'cnn_course/{p.name}: docstring of {node.name}', doc))
        self.modules = sorted(m for m in self.toplevel if m and not m.startswith('_'))
        self.families = {n.lstrip('_').split('_')[0] for names in self.alls.values() for n in names
                         if '_' in n.strip('_')}

    def dotted(self, parts:list[str]) -> str|None:
        "Why `cnn_course.<parts>` does not resolve, or None when it does."
        mod, rest = parts[0], parts[1:]
        if mod in self.toplevel.get('', set()):
            return None  # a name in cnn_course/__init__.py: `cnn_course.__version__`
        if mod not in self.modules:
            return f'cnn_course has no module `{mod}` (modules: {", ".join(self.modules)})'
        if not rest: return None
        if rest[0] not in self.toplevel[mod]:
            return f'cnn_course.{mod} defines no `{rest[0]}`'
        if (len(rest) > 1 and '.'.join(['cnn_course', mod] + rest) not in self.syms and
            rest[-1] not in self.identifiers):
            return f'`{rest[-1]}` is not defined anywhere in cnn_course'
        return None

    def bare_checked(self, name:str) -> bool:
        return '_' in name.strip('_') and name.lstrip('_').split('_')[0] in self.families


def check_text(lib:Library, where:str, md:str, local:set[str]=frozenset()) -> list[str]:
    "Broken cross-references in the inline code spans of markdown `md`."
    errors = []
    for span in _SPAN.findall(_FENCE.sub('', md)):
        for m in _DOTTED.finditer(span):
            if (why := lib.dotted(m[1].split('.')[1:])): errors.append(f'{where}: `{span}`: {why}')
        if (m := _BARE.match(span)) and lib.bare_checked(name := m[1]):
            if name not in lib.identifiers | local | EXTERNAL_NAMES | set(dir(builtins)):
                errors.append(f'{where}: `{span}`: `{name}` looks like a cnn_course name but is defined '
                              'nowhere in cnn_course/ or in this notebook (renamed? add it to EXTERNAL_NAMES '
                              f'in tools/docs_check.py if it belongs to another library)')
    return errors


def check_crossrefs(lib:Library) -> tuple[list[str], list[str]]:
    "Broken cross-references, and notes on cells the docs build will run although they do more than import."
    errors, mixed = [], []
    for nb_path in _notebooks():
        rel = nb_path.relative_to(ROOT).as_posix()
        cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
        trees = [_code_tree(_src(c)) if c['cell_type'] == 'code' else None for c in cells]
        local = set().union(*(_identifiers(t) for t in trees if t is not None))
        has_docs = any(re.search(r'^show_doc', _src(c), re.M) for c in cells if c['cell_type'] == 'code')
        for i, (c, tree) in enumerate(zip(cells, trees)):
            src = _src(c)
            if c['cell_type'] == 'markdown': errors += check_text(lib, f"{rel} cell {i + 1}", src, local)
            elif tree is not None and has_docs and not re.search(r'^#\|\s*(eval:\s*false|export)', src, re.M):
                nodes = list(ast.walk(tree))
                if (any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes) and
                    any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes)):
                    mixed.append(f"{nb_path.name} cell {i + 1}")
    for where, doc in lib.docstrings: errors += check_text(lib, where, doc)
    return errors, mixed


def write_sidebar() -> Path:
    """nbs/sidebar.yml: the home page; Lessons (the numbered notebooks); Results (the other pages in nbs/,
    the results
    page first); Library reference (nbs/api/)."""
    import yaml
    from nbdev.quarto import IndentDumper
    from make_api_nb import modules
    nbs = _notebooks()
    top = [p.relative_to(NBS).as_posix() for p in nbs if p.parent == NBS]
    contents = ['index.ipynb'] if 'index.ipynb' in top else []
    contents.append({'section': 'Lessons', 'contents': [p for p in top if p[0].isdigit()]})
    pages = sorted((p for p in top if not p[0].isdigit() and p != 'index.ipynb'),
                   key=lambda p: (p != 'results.ipynb', p))
    if pages: contents.append({'section': 'Results', 'contents': pages})
    order = {f'api/{m}.ipynb': i for i, m in enumerate(modules())}
    api = sorted((p.relative_to(NBS).as_posix() for p in nbs if p.parent == NBS / 'api'),
                 key=lambda p: (order.get(p, len(order)), p))
    if api: contents.append({'section': 'Library reference', 'contents': api})
    others = sorted({p.parent.relative_to(NBS).as_posix() for p in nbs} - {'.', 'api'})
    for d in others:
        contents.append({'section': d,
                         'contents': [p.relative_to(NBS).as_posix() for p in nbs
                                      if p.parent.relative_to(NBS).as_posix() == d]})
    out = NBS / 'sidebar.yml'
    out.write_text(yaml.dump({'website': {'sidebar': {'contents': contents}}}, Dumper=IndentDumper,
                             sort_keys=False), encoding='utf-8')
    return out


def _why(e:Exception) -> str:
    "nbdev's message (notebook, cell, source) and the error the cell raised, without the worker's traceback."
    msg = str(e).strip()
    cause = str(e.__cause__ or '')
    # a worker's exception arrives as a remote traceback: the cell's own error ends its first part
    first = cause.split('The above exception was the direct cause')[0].strip().strip('"').strip()
    err = first.splitlines()[-1].strip() if first else ''
    if not err and e.__cause__: err = f'{type(e.__cause__).__name__}: {e.__cause__}'
    return msg + (f'\n  -> {err}' if err else '') + \
        '\n  (the docs build runs show_doc cells, exported cells and every cell with an import: ' \
        'keep imports in cells of their own, or make the cell self-contained)'


def _show_doc_cell(cell) -> bool:
    """A code cell that shows docs and does nothing else: `show_doc(...)` calls, imports and comments (a cell
    that also
    computes something keeps the outputs its own run stored)."""
    from run_notebooks import imports_and_show_doc
    return cell['cell_type'] == 'code' and 'show_doc(' in _src(cell) and imports_and_show_doc(_src(cell))


def _unlinked(data:dict, site:str) -> dict:
    """A show_doc output as `show_doc` itself writes it: without the links to `site`'s pages that the docs
    step adds
    around `name`s afterwards (its `add_links`); those belong to the page, and would be added twice."""
    md = data.get('text/markdown')
    if md is None: return data
    md = ''.join(md) if isinstance(md, list) else md
    md = re.sub(r'\[(`[^`\n]+`)\]\(' + re.escape(site) + r'[^)\s]*\)', r'\1', md)
    return {**data, 'text/markdown': md.splitlines(keepends=True)}


def check_show_doc(cache:Path, store:bool=False) -> list[str]:
    """Compare every lesson's stored `show_doc` outputs with those the docs step just wrote into `cache`
    (_proc/);
    return a problem per notebook out of date, or with `store` write the fresh outputs into the notebook."""
    from nbdev.config import get_config
    cfg, problems = get_config(), []
    site = cfg.doc_host.rstrip('/') + '/' + cfg.doc_baseurl.strip('/')
    for nb_path in _notebooks():
        rel = nb_path.relative_to(NBS)
        if rel.parts[0] == 'api' or not (cache / rel).exists(): continue
        nb, done = json.loads(nb_path.read_text()), json.loads((cache / rel).read_text())
        fresh = {c.get('id'): c.get('outputs', []) for c in done['cells'] if _show_doc_cell(c)}
        stale = []
        for cell in nb['cells']:
            if not _show_doc_cell(cell) or cell.get('id') not in fresh: continue
            new = [{'data': _unlinked(o['data'], site), 'execution_count': None, 'metadata': {},
                    'output_type': 'execute_result'}
                   for o in fresh[cell['id']] if o.get('data')]
            if [_unlinked(o.get('data', {}), site)
                for o in cell.get('outputs', [])] != [o['data'] for o in new]:
                stale.append(cell['id'])
                if store: cell['outputs'] = new
        if stale and store:
            nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
            print(f'{rel}: stored fresh show_doc outputs in {len(stale)} cell{"s" * (len(stale) > 1)} (now '
                  'run nbdev_clean)')
        elif stale:
            problems.append(f'nbs/{rel}: the stored show_doc output of {len(stale)} '
                            f'cell{"s" * (len(stale) > 1)} '
                            f'({", ".join(stale[:4])}{", ..." if len(stale) > 4 else ""}) differs from what '
                            'the docs build shows: run `python tools/docs_check.py --store-show-doc && '
                            'nbdev_clean` and commit the notebook')
    return problems


_SOURCE_LINK = re.compile(r'\[source\]\(\S+?/blob/[^/]+/(\S+?\.py)#L(\w+)\)')
_HEADING = re.compile(r'^#+ (\S+)', re.M)


def check_source_links(cache:Path) -> list[str]:
    """Every `show_doc` source link in `cache` (_proc/: the lessons and the API pages) must point at the line
    that defines its name: `def name`, `class name` or `name =`. nbdev 2.4.14 alone links line None for a name
    imported from
    the library (see tools/make_api_nb.py), as a lesson's `show_doc` of a name it imported again would."""
    problems = []
    for page in sorted(cache.rglob('*.ipynb')):
        for cell in json.loads(page.read_text())['cells']:
            for o in cell.get('outputs', []):
                md = o.get('data', {}).get('text/markdown', '')
                md = ''.join(md) if isinstance(md, list) else md
                link, name = _SOURCE_LINK.search(md), _HEADING.search(md)
                if not link or not name: continue
                path, line = link.groups()
                short = name[1].split('.')[-1]
                lines = (ROOT / path).read_text().splitlines() if (ROOT / path).exists() else []
                text = lines[int(line) - 1] if line.isdigit() and 0 < int(line) <= len(lines) else ''
                named = re.escape(short)
                if not re.match(rf'\s*((async\s+)?def|class)\s+{named}\b|\s*{named}\s*[:=]', text):
                    problems.append(f'{page.relative_to(cache)}: the source link of {name[1]} points at '
                                    f'{path} line {line}, which does not define it ({text.strip()[:60]!r})')
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n_workers', type=int, default=2, help='processes for proc_nbs')
    p.add_argument('--no-proc', action='store_true', help='skip proc_nbs (config files and cross-references '
                                                          'only)')
    p.add_argument('--store-show-doc', action='store_true',
                   help="write the docs step's fresh show_doc outputs into the lessons instead of reporting "
                        "old ones")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    # nbdev warns (in every worker) about each cell mixing imports and other code; one summary line instead
    os.environ['PYTHONWARNINGS'] = f'ignore:{_IMPORT_WARNING}'
    warnings.filterwarnings('ignore', message=_IMPORT_WARNING)
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.doclinks import _build_modidx
    from nbdev.serve import proc_nbs
    start = time.time()
    refresh_quarto_yml()
    _build_modidx()
    if get_config().custom_sidebar: write_sidebar()
    else: nbdev_sidebar.__wrapped__(skip_folder_re=SKIP_FOLDER_RE)
    print('docs config: nbs/nbdev.yml, nbs/sidebar.yml, cnn_course/_modidx.py regenerated')

    errors, mixed = check_crossrefs(Library())
    if mixed:
        print(f'note: {len(mixed)} cells mix imports with other code, so the docs build runs them too: '
              f'{", ".join(mixed)}')
    if not args.no_proc:
        t = time.time()
        try:
            cache = proc_nbs(n_workers=args.n_workers, force=True, skip_folder_re=SKIP_FOLDER_RE)
            print(f'proc_nbs: processed {len(_notebooks())} notebooks into {cache.relative_to(ROOT)}/ in '
                  f'{time.time() - t:.0f} s')
        except Exception as e:
            errors.append(f'a notebook failed to process for the docs (nbdev.serve.proc_nbs): {_why(e)}')
        else: errors += check_show_doc(cache, store=args.store_show_doc) + check_source_links(cache)
    if errors:
        print('\n'.join(['docs check FAILED:'] + [f'  {e}' for e in errors]))
        return 1
    print(f'docs check passed in {time.time() - start:.0f} s')
    return 0


if __name__ == '__main__': sys.exit(main())
