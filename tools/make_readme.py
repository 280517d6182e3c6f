#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (the docs site's home page); `--check` only compares.

nbdev's own `nbdev_readme` renders index.ipynb with Quarto, which cannot be installed on the
machines this course is built on, so this small renderer does the same job without it:

- the title cell (`# title` and `> description`, which nbdev turns into front matter) becomes a
  `# title` heading, a do-not-edit comment and the description as a paragraph; the rest of that
  cell is dropped, as nbdev drops it;
- every other markdown cell is copied as it is, except that relative links, written relative to
  nbs/ so that they work on the docs site, are rewritten relative to the repository root
  (`00_setup.ipynb` -> `nbs/00_setup.ipynb`);
- code cells become ```python blocks without their `#|` directives; cells flagged `#| hide`,
  `#| include: false` or `#| echo: false` are left out, and so are outputs and raw cells.
"""
from __future__ import annotations
import argparse, difflib, json, posixpath, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / 'nbs' / 'index.ipynb'
README = ROOT / 'README.md'
NOTICE = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->'
_HIDDEN = re.compile(r'^#\|\s*(hide\s*$|include:\s*false|echo:\s*false)', re.M)
_LINK = re.compile(r'(!?\[[^\]]*\]\()([^)\s]+)(\))')


def _src(cell) -> str:
    s = cell['source']
    return ''.join(s) if isinstance(s, list) else s


def _relink(target:str, base:str='nbs') -> str:
    "A link target written relative to nbs/, made relative to the repository root."
    if re.match(r'^([a-z][a-z0-9+.-]*:|#|/)', target, re.I): return target  # URL, anchor or absolute
    return posixpath.normpath(posixpath.join(base, target))


def _relink_markdown(md:str) -> str:
    out, fence = [], False
    for line in md.split('\n'):
        if line.lstrip().startswith(('```', '~~~')): fence = not fence
        out.append(line if fence else _LINK.sub(lambda m: m[1] + _relink(m[2]) + m[3], line))
    return '\n'.join(out)


def _title(md:str) -> str|None:
    "The README's head from a `# title` + `> description` cell, or None if `md` is not one."
    m = re.search(r'^#\s+(\S.*?)\s*$', md, re.M)
    if not m: return None
    head = [f'# {m[1]}', NOTICE]
    d = re.search(r'^>\s+(\S.*?)\s*$', md, re.M)
    if d: head.append(d[1])
    return '\n\n'.join(head)


def render(nb_path:Path=INDEX) -> str:
    "README.md's text for the notebook at `nb_path`."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts, seen_title = [], False
    for cell in nb['cells']:
        src = _src(cell).strip('\n')
        if not src.strip(): continue
        if cell['cell_type'] == 'markdown':
            if not seen_title and (head := _title(src)) is not None:
                parts.append(head); seen_title = True
            else: parts.append(_relink_markdown(src))
        elif cell['cell_type'] == 'code':
            if _HIDDEN.search(src): continue
            code = '\n'.join(l for l in src.split('\n') if not l.startswith('#|')).strip('\n')
            if code: parts.append(f'```python\n{code}\n```')
    return '\n\n'.join(parts) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--check', action='store_true', help='fail if README.md differs from the render; write '
                                                        'nothing')
    args = p.parse_args(argv)
    new = render()
    old = README.read_text(encoding='utf-8') if README.exists() else ''
    if new == old:
        if not args.check: print('README.md is up to date')
        return 0
    if args.check:
        diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), 'README.md (committed)',
                                         'README.md (rendered from nbs/index.ipynb)', lineterm='', n=1))
        print('\n'.join(diff[:60]) + ('\n...' if len(diff) > 60 else ''))
        print('README.md does not match nbs/index.ipynb: edit nbs/index.ipynb (never README.md), '
              'then run `python tools/make_readme.py` and commit both')
        return 1
    README.write_text(new, encoding='utf-8')
    print('wrote README.md')
    return 0


if __name__ == '__main__': sys.exit(main())
