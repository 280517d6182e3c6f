#!/usr/bin/env python
"""Write the API pages nbs/api/<module>.ipynb, one per module of cnn_course; `--check` only compares.

Each page has a `show_doc` cell for every function and class in the module's `__all__` (in that
order) and one line per constant (its value when short, and the comment written next to it). The
lessons that define the names are linked at the top. Pages are generated from the modules' source
(nothing is imported), so they change exactly when a module's `__all__` or definitions change.
A hidden cell gives `show_doc` a renderer whose source links point at each name's line (see SOURCE_LINE).
"""
from __future__ import annotations
import argparse, ast, hashlib, io, json, re, sys, tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT / 'cnn_course', ROOT / 'nbs'
API = NBS / 'api'
_CELL_NB = re.compile(r'^# %% \.\./nbs/(\S+\.ipynb)', re.M)
_FIRST_NB = re.compile(r'File to edit: \.\./nbs/(\S+\.ipynb)')


def modules() -> list[str]:
    "Public module names, in the order the lessons create them (the notebook that `default_exp`s each)."
    def created_by(p:Path):
        m = _FIRST_NB.search(p.read_text(encoding='utf-8'))
        return (m[1] if m else '~', p.stem)
    return ([p.stem for p in sorted((p for p in LIB.glob('*.py') if not p.stem.startswith('_')),
                                    key=created_by)])


def module_info(mod:str) -> dict:
    """`__all__`, which of its names are constants (with a value and a comment) and the notebooks a module
    comes from."""
    path = LIB / f'{mod}.py'
    src = path.read_text(encoding='utf-8')
    tree = ast.parse(src)
    comments = {t.start[0]: t.string.lstrip('#').strip()
                for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT}
    names, defs, consts, imported, lazy = [], set(), {}, {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): defs.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            imported.update({a.asname or a.name: node.module for a in node.names})
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if not isinstance(t, ast.Name): continue
                if t.id == '__all__': names = list(ast.literal_eval(node.value))
                elif t.id == '_MOVED':  # names re-exported lazily by the module's __getattr__: {name: module}
                    lazy = eval(compile(ast.Expression(node.value), str(path), 'eval'), {})
                else:
                    value = ast.get_source_segment(src, node.value) or ''
                    consts[t.id] = dict(value=value if '\n' not in value and len(value) <= 60 else None,
                                        comment=comments.get(node.end_lineno, ''))
    notebooks = list(dict.fromkeys(_CELL_NB.findall(src)))
    moved = {n: imported[n] for n in names if n in imported and n not in defs and n not in consts}
    moved.update(lazy)
    return dict(names=names,
                documented=[n for n in names if n not in moved and (n in defs or n not in consts)],
                constants={n: consts[n] for n in names if n in consts and n not in defs}, notebooks=notebooks,
                moved=moved)


def nb_title(name:str) -> str:
    "The `# Title` of notebook nbs/`name`."
    nb = json.loads((NBS / name).read_text(encoding='utf-8'))
    for c in nb['cells']:
        if c['cell_type'] == 'markdown' and (m := re.search(r'^#\s+(\S.*?)\s*$', ''.join(c['source']), re.M)):
            return m[1]
    return name


def _cell(kind:str, source:str, key:str) -> dict:
    cell = dict(cell_type=kind, id=hashlib.sha1(key.encode()).hexdigest()[:8], metadata={},
                source=source.splitlines(keepends=True))
    if kind == 'code': cell.update(execution_count=None, outputs=[])
    return cell


def _wrap_import(mod:str, names:list[str], width:int=100) -> str:
    lines, line = [], f'from cnn_course.{mod} import ('
    for n in names:
        piece = f'{n}, '
        if len(line) + len(piece) > width: lines.append(line.rstrip()); line = '    '
        line += piece
    lines.append(line.rstrip().rstrip(',') + ')')
    return '\n'.join(lines)


# nbdev 2.4.14 links the source of an imported name to line None (its issue 1418): it looks the line up under
# the
# name with its module (cnn_course.core.get_device), where it has the module's own names (get_device). A
# lesson that
# defines a name gets the right line. The API pages import every name, so their renderer looks each one up by
# the
# module's own name (lesson 10 does the same for the two dataclasses it shows from the library).
# (`exec_doc`: the docs step runs the cell, as it runs imports and show_doc cells.)
SOURCE_LINE = """#| hide
#| exec_doc
class SourceLine(BasicMarkdownRenderer):
    "show_doc's renderer linking the source at the name's own line (nbdev 2.4.14: line None for imports)"
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fn = self.fn.removeprefix('cnn_course.{mod}.')
show_doc = partial(show_doc, renderer=SourceLine)"""


def page(mod:str) -> dict:
    "The API notebook for cnn_course.`mod`."
    info = module_info(mod)
    lessons = ', '.join(f'[{nb_title(n)}](../{n})' for n in info['notebooks'])
    cells = [('markdown', f'# cnn_course.{mod}\n\n> Every public name in `cnn_course.{mod}`, in the order of '
                          'its `__all__`: signature, parameters and docstring.'),
             ('markdown', f'Taught in: {lessons}. The lessons show each name at work; this page lists them '
                          'all.')]
    imports = ['from functools import partial', 'from nbdev.showdoc import show_doc, BasicMarkdownRenderer']
    if info['documented']: imports.append(_wrap_import(mod, info['documented']))
    cells.append(('code', '#| hide\n' + '\n'.join(imports)))
    if info['documented']: cells.append(('code', SOURCE_LINE.format(mod=mod)))
    if info['constants']:
        lines = ['## Constants', '']
        for n, c in info['constants'].items():
            line = f'- `{n}`' + (f' = `{c["value"]}`' if c['value'] else '')
            lines.append(line + (f': {c["comment"]}' if c['comment'] else ''))
        cells.append(('markdown', '\n'.join(lines)))
    if info['documented']:
        if info['constants']: cells.append(('markdown', '## Functions and classes'))
        cells += [('code', f'show_doc({n})') for n in info['documented']]
    if info['moved']:  # names re-exported from the module that defines them: documented there
        homes = {}
        for n, home in info['moved'].items(): homes.setdefault(home, []).append(f'`{n}`')
        cells.append(('markdown', '## Also importable from here\n\n' + '\n'.join(
            f'- {", ".join(ns)}: defined in [cnn_course.{h}]({h}.ipynb)' for h, ns in homes.items())))
    nb = dict(cells=[_cell(k, s, f'{mod}:{i}:{s}') for i, (k, s) in enumerate(cells)],
              metadata={'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
              nbformat=4, nbformat_minor=5)
    return nb


def render_all() -> dict[Path, str]:
    "The text of every API notebook, by path."
    return ({API / f'{m}.ipynb': json.dumps(page(m), sort_keys=True, indent=1,
                                            ensure_ascii=False) + '\n' for m in modules()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--check', action='store_true', help='fail if nbs/api/ differs from what would be '
                                                        'written; write nothing')
    args = p.parse_args(argv)
    want = render_all()
    stale = [f for f, text in want.items() if not f.exists() or f.read_text(encoding='utf-8') != text]
    extra = [f for f in sorted(API.glob('*.ipynb')) if f not in want]
    if not stale and not extra:
        if not args.check: print('nbs/api/ is up to date')
        return 0
    if args.check:
        for f in stale: print(f'{f.relative_to(ROOT)} is out of date (or missing)')
        for f in extra: print(f'{f.relative_to(ROOT)} documents no module of cnn_course')
        print('the API pages do not match the modules: run `python tools/make_api_nb.py` and commit nbs/api/')
        return 1
    API.mkdir(exist_ok=True)
    for f in stale: f.write_text(want[f], encoding='utf-8'); print(f'wrote {f.relative_to(ROOT)}')
    for f in extra: f.unlink(); print(f'removed {f.relative_to(ROOT)}')
    return 0


if __name__ == '__main__': sys.exit(main())
