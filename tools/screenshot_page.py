"""Store a screenshot of lesson 9's web page in the lesson: the attachment `page.png` of the markdown cell
that shows it. Where no model runs (the docs site), the page is shown this way, not as a dead frame.

    python tools/screenshot_page.py nbs/runs/share    # after the lesson's full run (tools/store_outputs.py)

It starts `cnn-course serve` on the run folder, opens the page in headless Chromium with the internet shut
off, uploads the first Fashion-MNIST test picture, and stores the page as a PNG of at most 256 colours.
"""
import base64, io, json, sys, tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from test_jupyterlab import free_port, headless_chromium  # noqa: E402  (the tests' browser and servers)
from test_pages import OFFLINE  # noqa: E402
from test_share import serve, stop, upload, wait_until_up  # noqa: E402

LESSON = ROOT / 'nbs' / '09_share.ipynb'
NAME = 'page.png'


def screenshot(run:Path, folder:Path) -> bytes:
    "The page of `run` after a test picture was uploaded, as a small PNG."
    from cnn_course.data import load_dataset
    picture = folder / 'test-0.png'
    load_dataset('fashion-mnist', train=False, transform=lambda p: p)[0][0].resize((112, 112)).save(picture)
    port = free_port()
    server = serve(run, port)
    try:
        wait_until_up(server, port)
        with headless_chromium(folder, OFFLINE + ' , EXCLUDE 127.0.0.1') as driver:
            driver.set_window_size(1300, 820)  # the page, without the empty space below it
            driver.get(f'http://127.0.0.1:{port}/')
            upload(driver, picture, '#classes [data-testid=label-output-value]')
            shot = driver.get_screenshot_as_png()
    finally: stop(server)
    png = io.BytesIO()
    Image.open(io.BytesIO(shot)).convert('RGB').quantize(256).save(png, format='PNG', optimize=True)
    return png.getvalue()


def store(png:bytes):
    "Put `png` into the lesson as the attachment of the cell that shows `attachment:page.png`."
    nb = json.loads(LESSON.read_text(encoding='utf-8'))
    [cell] = [c for c in nb['cells'] if f'attachment:{NAME}' in ''.join(c['source'])]
    cell['attachments'] = {NAME: {'image/png': base64.b64encode(png).decode()}}
    LESSON.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')


if __name__ == '__main__':
    with tempfile.TemporaryDirectory() as folder:
        png = screenshot(Path(sys.argv[1]), Path(folder))
    store(png)
    print(f'stored a {len(png):,}-byte screenshot in {LESSON.name}')
