"""Render the docs site's pages as far as this machine can, and check them as a browser shows them.

Quarto renders the real site (the docs workflow); it cannot be installed here. This renders what Quarto
renders: the notebooks nbdev's pre-render step wrote into _proc/ (`python tools/docs_check.py`), each with
nbconvert to `<folder>/<output-file>` (the page name Quarto gives it: 02_fc_vs_cnn.ipynb -> fc_vs_cnn.html),
the site's styles.css beside them, links into the site (nbdev's links to
`https://<doc_host><doc_baseurl>/...`, and links to other notebooks) made relative, as on the site. Like
Quarto, it honours the cells' `#| include`, `#| echo` and `#| output` options, hides those lines, and renders
markdown outputs (show_doc's) with pandoc, the converter Quarto is built on. `page_problems` then opens a
page in a browser (Selenium's driver) and lists what a reader would meet: a broken image, a figure the
notebook holds that the page does not show, an empty output, error text, a cell option or raw attribute text
on show, a link to a page or an anchor that does not exist.

    python tools/render_pages.py OUT_DIR     # render, then open OUT_DIR/index.html in a browser
"""
import configparser, json, posixpath, re, shutil, subprocess, sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from run_notebooks import FAULT  # noqa: E402  (the same error text the notebook runs fail on)

IMAGE_TYPES = ('image/png', 'image/jpeg', 'image/svg+xml', 'image/gif')


def site_url() -> str:
    "The site's address from settings.ini, e.g. https://cnn-course.github.io/cnn_course/"
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    return cfg['DEFAULT']['doc_host'].rstrip('/') + '/' + cfg['DEFAULT']['doc_baseurl'].strip('/') + '/'


def front_matter(nb:dict) -> dict:
    """The YAML front matter nbdev puts in a processed notebook's first raw cell (title, description,
    output-file)."""
    import yaml
    first = nb['cells'][0] if nb['cells'] else None
    if first is None or first['cell_type'] != 'raw': return {}
    text = ''.join(first['source']).strip()
    return yaml.safe_load(text.strip('-')) or {} if text.startswith('---') else {}


def page_names(proc:Path) -> dict:
    "Each processed notebook (relative path) -> its page (relative path), as Quarto names it."
    names = {}
    for nb_path in sorted(proc.rglob('*.ipynb')):
        rel = nb_path.relative_to(proc)
        out = (front_matter(json.loads(nb_path.read_text(encoding='utf-8'))).get('output-file') or
               rel.with_suffix('.html').name)
        names[rel.as_posix()] = (rel.parent / out).as_posix()
    return names


def _relative(target:str, page:str) -> str:
    "`target` (a path from the site's root) as a link from `page`."
    depth = page.count('/')
    return '../' * depth + target


def _rewrite_links(html:str, page:str, names:dict, site:str) -> str:
    "Links into the site and to other notebooks, made relative as on the published site."
    def fix(m):
        href = m[2]
        if href.startswith(site): return f'{m[1]}{_relative(href[len(site):], page)}{m[3]}'
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path.endswith('.ipynb'): return m[0]
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
        target = names.get(target, target[:-len('.ipynb')] + '.html')
        return f'{m[1]}{_relative(target, page)}{"#" + parts.fragment if parts.fragment else ""}{m[3]}'
    return re.sub(r'(href=")([^"]*)(")', fix, html)


_OPTION = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def cell_options(src:str) -> dict:
    "The Quarto options of a code cell: its leading `#| key: value` lines."
    options = {}
    for line in src.splitlines():
        if not line.startswith('#|'): break
        if m := _OPTION.match(line): options[m[1]] = m[2].lower()
    return options


def _as_quarto_shows(cell) -> bool:
    "Apply a code cell's options as Quarto does, in place; False when the page leaves the cell out."
    options = cell_options(cell.source)
    if options.get('include') == 'false': return False
    cell.source = '\n'.join(l for l in cell.source.splitlines() if not l.startswith('#|')).strip('\n')
    if options.get('echo') == 'false': cell.metadata['transient'] = {'remove_source': True}
    if options.get('output') == 'false': cell.outputs = []
    if options.get('output') == 'asis':  # the printed text is markdown, as show_doc's is
        for o in cell.outputs:
            if o.output_type == 'stream':
                o.update(output_type='display_data', metadata={}, data={'text/markdown': o.text})
    return True


def _markdown_outputs(cells) -> list:
    "The outputs that Quarto renders as markdown."
    return [o for c in cells if c.cell_type == 'code' for o in c.outputs
            if 'text/markdown' in o.get('data', {})]


def pandoc_html(texts:list) -> list:
    """Each markdown text as HTML, in one pandoc call (pandoc starts in about 0.1 s; a page holds dozens of
    outputs)."""
    if not texts: return []
    if not shutil.which('pandoc'):
        raise FileNotFoundError('pandoc not found: `apt-get install pandoc` (tools/setup.sh does); Quarto '
                                'renders markdown with it, so the pages are checked with it too')
    mark = '<!--cnn-course-output-->'
    doc = '\n\n'.join(f'{mark}\n\n{t}' for t in texts)
    html = subprocess.run(['pandoc', '-f', 'markdown', '-t', 'html'], input=doc, capture_output=True,
                          text=True, check=True).stdout
    parts = html.split(mark)[1:]
    assert len(parts) == len(texts), f'pandoc returned {len(parts)} parts for {len(texts)} markdown outputs'
    return parts


def _as_quarto_renders(nb):
    "The notebook's cells as a Quarto page shows them, in place."
    nb.cells = [c for c in nb.cells if c.cell_type != 'code' or _as_quarto_shows(c)]
    outputs = _markdown_outputs(nb.cells)
    texts = [o.data['text/markdown'] for o in outputs]
    for o, html in zip(outputs, pandoc_html([t if isinstance(t, str) else ''.join(t) for t in texts])):
        o.data = {'text/html': html}


def render(out:Path, # the folder the pages go into
           proc:Path=ROOT / '_proc', # nbdev's processed notebooks
           # honour cell options and render markdown outputs as Quarto does; False: nbconvert alone
           quarto:bool=True,
           ) -> list:
    """Render every processed notebook in `proc` into `out` (pages named as on the site); return the pages'
    paths."""
    from nbconvert import HTMLExporter
    import nbformat
    if not proc.is_dir():
        raise FileNotFoundError(f'{proc} not found: run `python tools/docs_check.py` (the docs pre-render '
                                'step) first')
    names, site = page_names(proc), site_url()
    exporter = HTMLExporter(template_name='lab')
    out.mkdir(parents=True, exist_ok=True)
    if (proc / 'styles.css').exists(): shutil.copy(proc / 'styles.css', out / 'styles.css')
    pages = []
    for rel, page in names.items():
        nb = nbformat.read(proc / rel, as_version=4)
        for cell in nb.cells:
            cell.pop('has_sd', None)  # nbdev's mark of a show_doc cell: not nbformat's, Quarto ignores it
        if quarto: _as_quarto_renders(nb)
        meta = front_matter(nb)
        if meta: nb.cells = nb.cells[1:]  # Quarto shows the front matter as the title block
        html, _ = exporter.from_notebook_node(nb)
        head = f'<link rel="stylesheet" href="{_relative("styles.css", page)}">'
        title = (f'<header id="title-block-header"><h1 class="title">{meta.get("title", "")}</h1>'
                 f'<p class="description">{meta.get("description", "")}</p></header>') if meta else ''
        html = html.replace('</head>', head + '</head>', 1).replace('<main>', '<main>' + title, 1)
        # nbconvert's template loads require.js and MathJax from CDNs: offline, every page would wait for them
        html = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', '', html)
        path = out / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_rewrite_links(html, page, names, site), encoding='utf-8')
        pages.append(path)
    return pages


def _outputs(nb:dict):
    return [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]


def expected_images(nb:dict) -> int:
    "How many pictures a notebook's stored outputs hold (each should be on its page)."
    return sum(any(t in o.get('data', {}) for t in IMAGE_TYPES) for o in _outputs(nb))


def empty_outputs(nb:dict) -> int:
    """Stored results with no data at all (IPython stores one after a value that displayed itself): nbconvert
    leaves
    them out of the page, where `READ_PAGE` would count them, but a front end shows an empty output."""
    return sum(o['output_type'] in ('execute_result',
                                    'display_data') and not o.get('data') for o in _outputs(nb))


READ_PAGE = """
const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
return {
  // pictures from elsewhere (Colab's badge) cannot load offline; the site's own are inline or beside the page
  broken: [...document.images]
          .filter(i => /^(data|file):/.test(i.src) && (!i.complete || i.naturalWidth === 0))
                              .map(i => (i.src || '').slice(0, 60)),
  images: document.querySelectorAll('.jp-OutputArea-output img, .jp-OutputArea-output svg').length,
  empty: outputs.filter(o => !o.textContent.trim() &&
                             !o.querySelector('img, svg, table, iframe, video')).length,
  texts: outputs.map(o => o.textContent),
  // nbconvert's own pilcrow links beside each heading are not the site's (Quarto makes its own)
  links: [...document.querySelectorAll('a[href]:not(.anchor-link)')].map(a => a.getAttribute('href')),
  inputs: [...document.querySelectorAll('.jp-InputArea-editor')].map(e => e.textContent),
  // the text a reader sees outside code: where markdown's own syntax would show if it was not rendered
  prose: (() => { const b = document.body.cloneNode(true);
                  b.querySelectorAll('pre, code, script, style').forEach(e => e.remove());
                  return b.textContent; })(),
};
"""
# A cell option Quarto hides (`#| echo: false`), and pandoc's attribute syntax (`{target="_blank" ...}`,
# `{.class}`,
# `{#id}`) left as text by a markdown renderer that does not know it.
SHOWN_OPTION = re.compile(r'^\s*#\|.*$', re.M)
RAW_ATTRIBUTES = re.compile(r'\{\s*(?:[#.][A-Za-z][\w-]*|[A-Za-z][\w-]*=)[^{}\n]*\}')


def _ids(page:Path) -> set:
    return {i.lower() for i in re.findall(r'\bid="([^"]+)"', page.read_text(encoding='utf-8'))}


def page_problems(driver, # a Selenium WebDriver (headless Chromium)
                  page:Path, # a page `render` wrote
                  nb:dict, # the processed notebook it was rendered from
                  ) -> list:
    """What a reader of `page` would meet that is wrong: broken or missing pictures, empty outputs, error
    text, cell
    options or raw attribute text on show, dead links."""
    driver.get(page.as_uri())
    seen = driver.execute_script(READ_PAGE)
    problems = [f'a broken image ({src}...)' for src in seen['broken']]
    images = expected_images(nb)
    if seen['images'] < images:
        problems.append(f'shows {seen["images"]} of the {images} pictures its notebook holds')
    if seen['empty'] + empty_outputs(nb):
        problems.append(f'{seen["empty"] + empty_outputs(nb)} empty outputs')
    for text in seen['texts']:
        if FAULT.search(text): problems.append(f'error text: {FAULT.search(text)[0]!r}')
    for text in seen['inputs']:
        if m := SHOWN_OPTION.search(text): problems.append(f'a cell option on show: {m[0].strip()!r}')
    problems += [f'raw attribute text: {m[0][:60]!r}' for m in RAW_ATTRIBUTES.finditer(seen['prose'])]
    ids_cache = {}
    for href in seen['links']:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(('mailto:', 'javascript:')):
            continue  # outside the site
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.is_file(): problems.append(f'a link to a page that does not exist: {href}'); continue
        if parts.fragment and target.suffix == '.html':
            if target not in ids_cache: ids_cache[target] = _ids(target)
            ids = ids_cache[target]
            if unquote(parts.fragment).lower() not in ids:
                problems.append(f'a link to an anchor that does not exist: {href}')
    return problems


if __name__ == '__main__':
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / '_pages')
    print(f'rendered {len(render(out))} pages into {out}')
