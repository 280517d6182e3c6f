"""The library's module layout: imports run one way (CONTRIBUTING.md's module map), with no cycle, and one
atomic write."""
import ast, re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / 'cnn_course'

# Each module and the modules it may import directly (the module map in CONTRIBUTING.md); what those import is
# allowed too.
ARROWS = {
    'core': set(),
    'settings': set(),
    'data': {'core', 'settings'},
    'distributed': {'core'},
    'viz': {'core', 'data'},
    'evaluation': {'data', 'viz'},  # lesson 2
    'conv': {'evaluation', 'viz'},  # lesson 1 (it shows feature maps with lesson 2's eval_mode)
    'callbacks': {'core', 'distributed', 'viz'},  # lesson 3
    'fast': {'callbacks', 'core', 'evaluation', 'viz'},  # lesson 3b
    'metrics': {'data', 'evaluation', 'viz'},  # lesson 4
    'pictures': {'data', 'evaluation'},  # used in lesson 5
    'resnet': set(),  # lesson 7
    'hooks': {'callbacks', 'evaluation', 'viz'},  # lesson 8
    'train': {'callbacks', 'core', 'data', 'distributed', 'evaluation', 'settings'},
    'checkpoint': {'callbacks', 'core', 'distributed'},
    'models': {'settings', 'conv', 'evaluation', 'callbacks', 'fast', 'metrics', 'resnet'},
    'speedrun': {'callbacks'},  # lesson 7b
    'runs': {'core', 'data', 'models', 'train', 'checkpoint', 'hooks', 'pictures', 'resnet', 'speedrun'},
    'share': {'core', 'data', 'hooks', 'models', 'runs', 'settings'},  # lesson 9
    'cli': {'runs', 'metrics', 'share'},
}


def allowed(module):
    "Everything `module` may import: its arrows and, through them, everything below."
    out, todo = set(), list(ARROWS[module])
    while todo:
        m = todo.pop()
        if m not in out: out.add(m); todo.extend(ARROWS[m])
    return out


def modules():
    return sorted(p.stem for p in LIB.glob('*.py') if not p.stem.startswith('_'))


def imports_of(module):
    "`[(imported module, line, function-local?)]` for every import of one of our modules in `module`."
    tree = ast.parse((LIB / f'{module}.py').read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f,
                                                         (ast.FunctionDef, ast.AsyncFunctionDef,
                                                          ast.ClassDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom)) and f is not tree}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: names = [node.module] if node.module else [a.name for a in node.names]
            elif node.module == 'cnn_course': names = [a.name for a in node.names]
            elif node.module and node.module.startswith('cnn_course.'): names = [node.module.split('.')[1]]
            else: continue
        elif isinstance(node, ast.Import):
            names = [a.name.split('.')[1] for a in node.names if a.name.startswith('cnn_course.')]
        else: continue
        found += [(n, node.lineno, id(node) in local) for n in names if n in ARROWS]
    return found


def test_every_module_has_arrows():
    assert set(modules()) == set(ARROWS), ('add the new module to ARROWS and to the module map in '
                                           'CONTRIBUTING.md')


@pytest.mark.parametrize('module', sorted(ARROWS))
def test_imports_follow_the_arrows(module):
    wrong = [(name, line) for name, line, _ in imports_of(module) if name not in allowed(module)]
    assert not wrong, (f'{module} imports {wrong}, against the layout: {module} may import '
                       f'{sorted(allowed(module))}')


def test_no_cycles():
    graph = {m: {name for name, _, _ in imports_of(m)} for m in modules()}
    state = {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f'import cycle: {" -> ".join(path + [m])}'
        state[m] = 'open'
        for n in graph[m]: visit(n, path + [m])
        state[m] = 'done'
    for m in graph: visit(m, [])


def test_function_local_imports_say_why():
    """Imports inside functions only where they keep `--help` fast or a dependency optional, and a comment
    says so."""
    bad = []
    for module in modules():
        src = (LIB / f'{module}.py').read_text()
        lines, tree = src.splitlines(), ast.parse(src)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            local = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
            if local and not any(re.search(r'#\s*(late|optional)\b', lines[n.lineno - 1]) for n in local):
                bad.append(f'{module}.{fn.name} (line {local[0].lineno})')
    assert not bad, f'function-local imports without a "# late:" or "# optional:" comment: {bad}'


def defines(module):
    "The names `module` defines at its top level (functions, classes, assignments; not its imports)."
    tree = ast.parse((LIB / f'{module}.py').read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return out


@pytest.mark.parametrize('module', sorted(ARROWS))
def test_names_come_from_their_home(module):
    """Inside the library a name is imported from the module that defines it, never through a re-export
    (`_all_` or `_MOVED`), so the arrows above say what really depends on what."""
    tree = ast.parse((LIB / f'{module}.py').read_text())
    wrong = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom): continue
        if node.level == 1 and node.module: source = node.module
        elif node.module and node.module.startswith('cnn_course.'): source = node.module.split('.')[1]
        else: continue
        if source not in ARROWS: continue
        wrong += [f'{a.name} from {source} (line {node.lineno})' for a in node.names
                  if a.name not in defines(source)]
    assert not wrong, f'{module} imports {wrong}: import each from the module that defines it'


def test_each_notebook_writes_one_module():
    """A notebook's exported cells all go to the module its `#| default_exp` names: no `#| export
    other_module`, and a module's imports stand in its own notebook."""
    import json
    bad = []
    for nb in sorted((LIB.parent / 'nbs').glob('*.ipynb')):
        for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            first = ''.join(cell['source']).split('\n', 1)[0]
            if cell['cell_type'] == 'code' and re.match(r'#\|\s*export[si]?\s+\w', first):
                bad.append(f'{nb.name}: {first}')
    assert not bad, f'cells exported to another module than their notebook\'s: {bad}'


def test_one_atomic_write():
    hits = [f'{p.name}:{i}' for p in sorted(LIB.glob('*.py'))
            for i, line in enumerate(p.read_text().splitlines(), 1) if 'os.replace' in line]
    assert len(hits) == 1 and hits[0].startswith('core.py:'), hits


def test_the_checker_catches_a_wrong_import(tmp_path, monkeypatch):
    "The test above can fail: a module that imports against the arrows is reported."
    fake = tmp_path / 'cnn_course'
    fake.mkdir()
    for m in ARROWS: (fake / f'{m}.py').write_text('')
    (fake / 'core.py').write_text('from .cli import main\n')
    (fake / 'cli.py').write_text('def f():\n    from cnn_course.core import x\n')
    monkeypatch.setattr(__import__(__name__), 'LIB', fake)
    assert imports_of('core') == [('cli', 1, False)] and 'cli' not in allowed('core')
    assert imports_of('cli') == [('core', 2, True)]
    with pytest.raises(AssertionError, match='import cycle'): test_no_cycles()
    with pytest.raises(AssertionError, match=r'cli\.f'): test_function_local_imports_say_why()
