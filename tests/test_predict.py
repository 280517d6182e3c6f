"""Your own pictures: `load_image` on real PNG/JPEG files of every kind, `predict_images`, `load_run_model`
and `cnn-course predict`."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cnn_course.checkpoint import CheckpointError
from cnn_course.data import CLASS_NAMES, IMAGE_SHAPES, ImageError, LoadedImage, load_image
from cnn_course.models import FashionCNN
from cnn_course.train import predict_images
from conftest import cli_here, quick_cli

REPO = Path(__file__).resolve().parents[1]
cli = quick_cli  # quick mode, a fresh process
GREY, COLOUR = IMAGE_SHAPES['fashion-mnist'], IMAGE_SHAPES['cifar10']


def dark_on_light(path, size=(300, 400), mode='RGB'):
    "A dark garment-like block on a light background, saved in the format the suffix names."
    image = Image.new('RGB', size, (240, 238, 230))
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 3, h // 10, 2 * w // 3, 9 * h // 10], fill=(30, 30, 60))
    image.convert(mode).save(path)
    return path


def test_a_photo_becomes_a_fashion_mnist_picture(tmp_path):
    for name, mode in (('a.png', 'RGB'), ('b.jpg', 'RGB'), ('c.png', 'L'), ('d.png', 'P'), ('e.jpg', 'L')):
        picture, inverted = load_image(dark_on_light(tmp_path / name, mode=mode), GREY)
        pixels = np.asarray(picture)
        assert picture.size == (28, 28) and picture.mode == 'L' and inverted, name
        # black surround, bright garment
        assert pixels[:, :3].max() < 8 and pixels[14, 12:16].min() > 200, name
        # the garment keeps its proportions: a third of the width of a 300x400 picture padded to 400x400
        assert 7 <= (pixels[14] > 128).sum() <= 9, (name, pixels[14])


def test_inversion_follows_the_background_and_the_option(tmp_path):
    light_on_dark = Image.new('L', (60, 60), 0)
    ImageDraw.Draw(light_on_dark).ellipse([15, 10, 45, 50], fill=230)
    assert load_image(light_on_dark, GREY)[1] is False  # already Fashion-MNIST's convention
    assert load_image(light_on_dark, GREY, invert=True)[1] is True
    photo = dark_on_light(tmp_path / 'p.png')
    assert load_image(photo, GREY, invert=False)[1] is False
    # left as it is: a light border
    assert np.asarray(load_image(photo, GREY, invert=False)[0])[0].min() > 200
    colour, inverted = load_image(photo, COLOUR)
    # colour pictures: never automatically
    assert colour.mode == 'RGB' and colour.size == (32, 32) and not inverted
    with pytest.raises(ValueError, match="invert='maybe'"): load_image(photo, GREY, invert='maybe')


def test_transparency_is_white_and_exif_rotation_is_applied(tmp_path):
    cutout = Image.new('RGBA', (100, 100), (0, 0, 0, 0))  # transparent, with black (invisible) colour values
    ImageDraw.Draw(cutout).rectangle([40, 10, 60, 90], fill=(20, 20, 20, 255))
    cutout.save(tmp_path / 'cutout.png')
    picture, inverted = load_image(tmp_path / 'cutout.png', GREY)
    assert inverted and np.asarray(picture)[0].max() < 8 and np.asarray(picture)[14, 14] > 200
    # a tall bar stored sideways, with the EXIF tag that says 'rotate 90 degrees to show'
    sideways = Image.new('L', (100, 100), 255)
    ImageDraw.Draw(sideways).rectangle([10, 40, 90, 60], fill=0)  # horizontal as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    sideways.save(tmp_path / 'phone.jpg', exif=exif.tobytes())
    shown = np.asarray(load_image(tmp_path / 'phone.jpg', GREY)[0]) > 128
    assert shown[:, 14].sum() > shown[14, :].sum()  # displayed upright: a vertical bar


def test_bad_files_are_refused_with_their_name(tmp_path):
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'text.jpg').write_text('not a picture at all')
    good = dark_on_light(tmp_path / 'good.png')
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:200])  # a truncated download
    with pytest.raises(ImageError, match=r'empty\.png is empty \(0 bytes\)'):
        load_image(tmp_path / 'empty.png', GREY)
    with pytest.raises(ImageError, match=r'text\.jpg cannot be read as a picture'):
        load_image(tmp_path / 'text.jpg', GREY)
    with pytest.raises(ImageError, match=r'cut\.png cannot be read as a picture'):
        load_image(tmp_path / 'cut.png', GREY)
    with pytest.raises(ImageError, match='is a folder'): load_image(tmp_path, GREY)
    with pytest.raises(FileNotFoundError, match='no such file'): load_image(tmp_path / 'missing.png', GREY)


def test_predict_images_scores_with_the_model_in_eval_mode(tmp_path):
    torch.manual_seed(0)
    net = FashionCNN().train()
    photo = dark_on_light(tmp_path / 'p.png')
    first = predict_images(net, [photo, photo], CLASS_NAMES['fashion-mnist'], GREY, top=10)
    assert net.training  # left as it was
    assert first[0] == first[1] and first[0]['image'] == str(photo) and first[0]['inverted']
    probabilities = [p for _, p in first[0]['top']]
    assert abs(sum(probabilities) - 1) < 1e-5 and probabilities == sorted(probabilities, reverse=True)
    # the same numbers by hand: load_image, the lessons' transform, softmax in eval mode (dropout off)
    from cnn_course.data import make_transform
    x = make_transform()(load_image(photo, GREY)[0])[None]
    with torch.no_grad(): expected = net.eval()(x).softmax(1)[0]
    assert torch.allclose(torch.tensor(sorted(probabilities, reverse=True)),
                          expected.sort(descending=True).values, atol=1e-6)
    with pytest.raises(ValueError, match='10 scores per picture but 3 class names'):
        predict_images(net, [photo], ('a', 'b', 'c'), GREY)
    with pytest.raises(ValueError, match='top=0'):
        predict_images(net, [photo], CLASS_NAMES['fashion-mnist'], GREY, top=0)


def test_cnn_course_predict_from_either_run_folder(tmp_path, trained_runs):
    "The command on both folders `train` writes, the options, and the failures a student meets."
    runs = trained_runs  # only read here
    photo = dark_on_light(tmp_path / 'photo.jpg')
    light = Image.new('L', (28, 28), 0)
    ImageDraw.Draw(light).rectangle([10, 4, 18, 24], fill=255)
    light.save(tmp_path / 'light.png')
    from cnn_course.runs import load_run_model, predict_run
    for folder in ('fc', 'fc-out'):
        # the first in a fresh process, as the `cnn-course` script runs; the rest in this one (the same
        # `main`)
        r = (cli if folder == 'fc'
             else cli_here)('predict', runs / folder, photo, tmp_path / 'light.png', cwd=tmp_path)
        assert r.returncode == 0 and r.stderr == '', r.stderr
        lines = r.stdout.splitlines()
        assert (len(lines) == 2 and lines[0].startswith(f'{photo}: ') and
                lines[0].endswith('(inverted: light background)'))
        assert lines[1].startswith(f'{tmp_path / "light.png"}: ') and 'inverted' not in lines[1]
        # the flat net: images flattened
        expected = predict_run(runs / folder, [photo], device='cpu')[0]['top']
        assert lines[0].split(': ', 1)[1].startswith(', '.join(f'{c} {p:.1%}' for c, p in expected))
    net, cfg, source = load_run_model(runs / 'fc-out', device='cpu')
    assert source.name == 'model.pt' and cfg.model == 'fc' and net.input_shape == (784,)
    r = cli_here('predict', runs / 'fc', photo, '--top', 1, '--invert', 'no', cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count('%') == 1 and 'inverted' not in r.stdout
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'notes.png').write_text('shopping list')
    bare = tmp_path / 'bare'
    bare.mkdir()
    (bare / 'model.pt').write_bytes((runs / 'fc-out' / 'model.pt').read_bytes())
    (tmp_path / 'no-config').mkdir()
    (tmp_path / 'no-config' / 'model.pt').write_bytes((runs / 'fc-out' / 'model.pt').read_bytes())
    (tmp_path / 'no-config' / 'run.json').write_text(json.dumps({'command': 'train'}))
    for name, fragment in (('empty.jpg', 'empty.jpg is empty (0 bytes)'),
                           ('notes.png', 'notes.png cannot be read as a picture')):
        # tried and failed: exit status 1, one line
        r = cli_here('predict', runs / 'fc', tmp_path / name, cwd=tmp_path)
        assert (r.returncode == 1 and r.stderr.startswith('cnn-course: error: predict: ') and
                r.stderr.count('\n') == 1), r.stderr
        assert fragment in r.stderr and r.stdout == '', (fragment, r.stderr)
    for args, fragment in [((runs / 'fc', tmp_path / 'nope.png'), 'nope.png: no such file'),
                           ((bare, photo), 'has model.pt but no run.json'),
                           ((tmp_path / 'no-config', photo), 'records no run config'),
                           ((runs / 'data', photo), 'it holds no best.pt or last.pt or model.pt'),
                           ((runs / 'fc', photo, '--invert', 'maybe'),
                            "argument --invert: invalid choice: 'maybe'")]:
        r = cli_here('predict', *args, cwd=tmp_path)
        assert (r.returncode == 2 and r.stderr.startswith('cnn-course: error: ') and
                r.stderr.count('\n') == 1), r.stderr
        assert fragment in r.stderr and r.stdout == '', (fragment, r.stderr)
    with pytest.raises(CheckpointError, match='no run.json'): load_run_model(bare)


# --- any picture a user has (issue 24)
# --------------------------------------------------------------------------

def garment(path, mode='RGB', size=(300, 400), **save):
    "`dark_on_light` in any Pillow mode and format (the suffix names it), with `save`'s options."
    image = Image.new('RGB', size, (240, 238, 230))
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 3, h // 10, 2 * w // 3, 9 * h // 10], fill=(30, 30, 60))
    image.convert(mode).save(path, **save)
    return path


def looks_like_a_garment(loaded, name):
    pixels = np.asarray(loaded.picture)
    assert loaded.picture.size == (28, 28) and loaded.picture.mode == 'L' and loaded.inverted, name
    assert loaded.blank is None and loaded.notes == (), (name, loaded)
    assert pixels[:, :3].max() < 8 and pixels[14, 12:16].min() > 200, (name, pixels[14])


def test_pictures_in_every_common_format(tmp_path):
    files = [garment(tmp_path / 'a.png'), garment(tmp_path / 'b.jpg'), garment(tmp_path / 'c.gif', 'P'),
             garment(tmp_path / 'd.tif'), garment(tmp_path / 'e.webp'), garment(tmp_path / 'f.bmp'),
             garment(tmp_path / 'cmyk.jpg', 'CMYK'), garment(tmp_path / 'grey.tif', 'L')]
    # 16-bit grey: Pillow's own conversion to 8 bits would clip every value above 255 to white (a blank
    # picture)
    sixteen = np.full((400, 300), 60000, np.uint16)
    sixteen[40:360, 100:200] = 5000
    Image.fromarray(sixteen).save(tmp_path / 'sixteen.png')
    assert Image.open(tmp_path / 'sixteen.png').mode.startswith('I')
    files.append(tmp_path / 'sixteen.png')
    for path in files: looks_like_a_garment(load_image(path, GREY), path.name)
    # an EXIF-rotated JPEG as a phone writes it: shown upright (the bar is vertical only after the rotation)
    sideways = Image.new('L', (400, 300), 240)
    ImageDraw.Draw(sideways).rectangle([40, 100, 360, 200], fill=20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    sideways.save(tmp_path / 'phone.jpg', exif=exif.tobytes())
    looks_like_a_garment(load_image(tmp_path / 'phone.jpg', GREY), 'phone.jpg')
    # damaged metadata: Pillow's warning becomes a note of the result, and no warning reaches the caller
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loaded = load_image(damaged_exif(tmp_path / 'meta.jpg'), GREY)
    assert loaded.notes == ("the picture's decoder warned: Corrupt EXIF data. Expecting to read 12 bytes but "
                            "only got 10.",)
    looks_like_a_garment(LoadedImage(loaded.picture, loaded.inverted), 'meta.jpg')


def damaged_exif(path):
    """A garment JPEG whose EXIF block claims more data than it holds (Pillow warns 'Corrupt EXIF data'
    reading it)."""
    return garment(path,
                   exif=b'Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00')


def write_png_rows(path, width, height, row):
    """A large 8-bit RGB PNG written a row at a time (`row(y)` gives its bytes), never whole in this process's
    memory."""
    import zlib
    chunk = lambda kind, data: (len(data).to_bytes(4, 'big') + kind + data +
                                zlib.crc32(kind + data).to_bytes(4, 'big'))
    deflate = zlib.compressobj(6)
    with open(path, 'wb') as f:
        header = width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + bytes([8, 2, 0, 0, 0])
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header))
        for y in range(height):
            data = deflate.compress(b'\x00' + row(y))
            if data: f.write(chunk(b'IDAT', data))
        f.write(chunk(b'IDAT', deflate.flush()) + chunk(b'IEND', b''))
    return path


def test_the_strip_decoder_gives_pillows_pixels(tmp_path):
    """A large PNG shrunk while decoded, a strip at a time, equals the whole picture decoded, then shrunk, in
    every 8-bit mode."""
    from cnn_course.pictures import _reduced_png
    yy, xx = np.mgrid[0:700, 0:900]
    grey = ((xx // 7 + yy // 5) % 200 + np.random.default_rng(0).integers(0, 50, xx.shape)).astype(np.uint8)
    pictures = {'L': Image.fromarray(grey),
                'RGB': Image.fromarray(np.stack([grey, grey[::-1], 255 - grey], -1)),
                'RGBA': Image.fromarray(np.stack([grey, grey[::-1], 255 - grey, grey // 2 + 100], -1)),
                'LA': Image.fromarray(np.stack([grey, grey[::-1]], -1), 'LA'),
                'P': Image.fromarray(grey).convert('P')}
    for mode, picture in pictures.items():
        # Pillow's encoder: every PNG row filter, rows that refer to the row above
        picture.save(tmp_path / f'{mode}.png')
        with open(tmp_path / f'{mode}.png', 'rb') as f: strips = _reduced_png(f, 3, rows_per_strip=60)
        whole = Image.open(tmp_path / f'{mode}.png')
        whole = (whole.convert('RGB') if mode == 'P' else whole).reduce(3)
        assert strips.mode == whole.mode and np.array_equal(np.asarray(strips), np.asarray(whole)), mode


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    import warnings
    bomb = tmp_path / 'bomb.png'
    Image.new('1', (15000, 15000), 1).save(bomb)  # all white: a few hundred KB for 225 million pixels
    assert bomb.stat().st_size < 1_000_000
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(ImageError, match=r'bomb\.png is 15000x15000 = 225,000,000 pixels, more than the '
                                             r'limit of 89,478,485 .* --max-pixels 225000000'):
            load_image(bomb, GREY)
        with pytest.raises(ImageError, match='more than the limit of 1,000'):
            load_image(garment(tmp_path / 'photo.png'), GREY, max_pixels=1000)
        loaded = load_image(bomb, GREY, max_pixels=225_000_000)  # raised: read (small), and seen to be blank
    assert loaded.blank == 'one colour' and loaded.picture.size == (28, 28)


MEASURE = '''
import resource, sys
from PIL import Image
from cnn_course.data import load_image
load_image(sys.argv[2], (1, 28, 28))  # a small photo first: what any picture costs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loaded = load_image(sys.argv[1], (1, 28, 28), max_pixels=10**9)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024, loaded.blank, int(loaded.picture.getextrema()[1]))
'''


@pytest.mark.long
def test_a_12000_pixel_picture_is_read_in_little_memory(tmp_path):
    """Peak memory for 12000x12000 pictures, each in a fresh process, against a small photo's: within 100 MB
    (the target)."""
    side = 12000
    bar = (bytes([240, 238, 230]) * 4000 + bytes([30, 30, 60]) * 4000 + bytes([240, 238, 230]) * 4000)
    write_png_rows(tmp_path / 'huge.png', side, side, lambda y: bar if 1200 <= y < 10800
                                                                else bytes([240, 238, 230]) * side)
    # a huge JPEG, made in a process of its own (Pillow's encoder holds the whole picture)
    subprocess.run([sys.executable, '-c', 'import sys; from PIL import Image, ImageDraw\n'
                    f'im = Image.new("L", ({side}, {side}), 240); ImageDraw.Draw(im).rectangle([4000, 1200, '
                    '8000, 10800], fill=30)\nim.save(sys.argv[1], quality=85)', tmp_path / 'huge.jpg'],
                    check=True, timeout=120)
    small = garment(tmp_path / 'small.jpg', size=(420, 380))
    for name in ('huge.png', 'huge.jpg'):
        r = subprocess.run([sys.executable, '-c', MEASURE, tmp_path / name, small], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        extra_mb, blank, brightest = r.stdout.split()
        print(f'{name}: {float(extra_mb):.0f} MB more than a 420x380 photo')  # shown with pytest -s
        # the bar, found
        assert float(extra_mb) < 100 and blank == 'None' and int(brightest) > 200, (name, r.stdout)


def test_blank_pictures_are_flagged_not_classified(tmp_path):
    Image.new('RGB', (1, 1), 'white').save(tmp_path / 'dot.png')
    strip = Image.new('L', (5000, 3), 255)
    ImageDraw.Draw(strip).line([(0, 1), (4999, 1)], fill=0)
    strip.save(tmp_path / 'strip.png')
    Image.new('RGBA', (200, 200), (0, 0, 0, 0)).save(tmp_path / 'clear.png')
    Image.new('CMYK', (200, 150), (0, 0, 0, 0)).save(tmp_path / 'cmyk.jpg')
    Image.new('P', (120, 90), 3).save(tmp_path / 'blank.gif')
    faint = np.full((100, 100), 200, np.uint8)
    # a speck three levels off: the levels stretch would blow it up to full contrast
    faint[40:60, 40:60] = 203
    Image.fromarray(faint).save(tmp_path / 'faint.png')
    # the strip is shrunk to 1024x1 first: its line and the white around it average to one grey
    expected = {'dot.png': 'one colour', 'strip.png': 'one colour', 'clear.png': 'one colour',
                'cmyk.jpg': 'one colour', 'blank.gif': 'one colour', 'faint.png': 'nearly uniform'}
    for shape in (GREY, COLOUR):
        found = {name: load_image(tmp_path / name, shape).blank for name in expected}
        assert found == expected, (shape, found)
    torch.manual_seed(0)
    results = predict_images(FashionCNN(), [tmp_path / n for n in expected] + [garment(tmp_path / 'g.png')],
                             CLASS_NAMES['fashion-mnist'], GREY)
    assert [r['blank'] for r in results] == [*expected.values(), None]
    # the model's answer is still there
    assert all(len(r['top']) == 3 and r['error'] is None for r in results)


def test_predict_images_reports_or_raises(tmp_path):
    torch.manual_seed(0)
    net = FashionCNN()
    good = garment(tmp_path / 'good.png')
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'cut.png').write_bytes(good.read_bytes()[:300])
    files = [good, tmp_path / 'empty.png', tmp_path / 'missing.png', tmp_path / 'cut.png', good]
    with pytest.raises(ImageError, match='empty.png is empty'):
        predict_images(net, files, CLASS_NAMES['fashion-mnist'], GREY)
    results = predict_images(net, files, CLASS_NAMES['fashion-mnist'], GREY, errors='report', batch_size=1)
    assert [r['image'] for r in results] == [str(f) for f in files]
    assert [bool(r['error']) for r in results] == [False, True, True, True, False]
    assert 'is empty (0 bytes)' in results[1]['error'] and 'no such file' in results[2]['error']
    assert 'cannot be read as a picture' in results[3]['error'] and results[3]['top'] == []
    # batches of 1: the same answer
    assert results[0]['top'] == results[4]['top'] and len(results[0]['top']) == 3
    with pytest.raises(ValueError, match="errors='ignore'"):
        predict_images(net, files, CLASS_NAMES['fashion-mnist'], GREY, errors='ignore')


@pytest.mark.long
def test_cnn_course_predict_on_many_pictures_and_folders(tmp_path, trained_runs):
    ck = trained_runs / 'fc'  # only read here
    good, other = garment(tmp_path / 'good.jpg'), garment(tmp_path / 'other.png', 'L')
    (tmp_path / 'bad.png').write_text('not a picture')
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'cut.jpg').write_bytes(good.read_bytes()[:400])  # a download that stopped
    Image.new('1', (15000, 15000), 1).save(tmp_path / 'bomb.png')
    # several files: every readable one is answered, every unreadable one gets its own line, then exit status
    # 1
    meta = damaged_exif(tmp_path / 'meta.jpg')
    r = cli('predict', ck, good, tmp_path / 'bad.png', other, tmp_path / 'bomb.png', tmp_path / 'gone.jpg',
            tmp_path / 'empty.png', tmp_path / 'cut.jpg', meta, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert [l.split(': ')[0] for l in r.stdout.splitlines()] == [str(good), str(other), str(meta)], r.stdout
    said = ("(inverted: light background) (note: the picture's decoder warned: Corrupt EXIF data. "
            'Expecting to read 12 bytes but only got 10.)')
    assert r.stdout.splitlines()[2].endswith(said), r.stdout
    errors = r.stderr.splitlines()
    assert (len(errors) == 6 and
            all(l.startswith('cnn-course: error: predict: ') for l in errors[:5])), r.stderr
    assert 'bad.png cannot be read' in r.stderr and '15000x15000 = 225,000,000 pixels' in r.stderr
    assert 'empty.png is empty (0 bytes)' in r.stderr and 'cut.jpg cannot be read' in r.stderr
    assert ('gone.jpg: no such file' in r.stderr and
            errors[5] == 'cnn-course: predict: 5 of 8 pictures could not be read')
    assert 'Traceback' not in r.stderr and 'Warning' not in r.stderr
    # a folder: its picture files, sorted; other entries skipped with a count; a blank one said to be blank;
    # --csv
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('b.png', 'a.jpg', 'd.tif'): garment(photos / name)
    Image.new('L', (50, 50), 128).save(photos / 'c.gif')
    garment(photos / 'e.jpg', 'CMYK')
    sixteen = np.full((400, 300), 60000, np.uint16)
    sixteen[40:360, 100:200] = 5000
    Image.fromarray(sixteen).save(photos / 'f.png')
    (photos / 'notes.txt').write_text('shopping list')
    (photos / 'raw').mkdir()
    r = cli_here('predict', ck, photos, '--csv', tmp_path / 'out' / 'answers.csv', '--max-pixels', 10**6,
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = ('a.jpg', 'b.png', 'c.gif', 'd.tif', 'e.jpg', 'f.png')
    assert [l.split(': ')[0] for l in lines] == [str(photos / n) for n in names], r.stdout
    assert lines[2] == f'{photos / "c.gif"}: blank picture (one colour): nothing to classify'
    first = lines[0].split(': ', 1)[1].split()[0]
    for line in lines[:2] + lines[3:]:  # the same garment in every format: the same first class, inverted
        assert (line.split(': ', 1)[1].split()[0] == first and
                line.endswith('(inverted: light background)')), lines
    assert (r.stderr == f'cnn-course: predict: {photos}: 6 picture files; skipped 2 other entries '
                        '(notes.txt, raw/)\n')
    import csv
    rows = list(csv.DictReader((tmp_path / 'out' / 'answers.csv').open()))
    assert [row['image'] for row in rows] == [str(photos / n) for n in names]
    assert (rows[0]['class'] == lines[0].split(': ')[1].split(' ')[0] and
            0 < float(rows[0]['probability']) <= 1)
    assert rows[0]['note'] == 'inverted: light background' and rows[2]['note'] == 'blank: one colour'
    assert rows[2]['class'] == rows[2]['probability'] == ''
    # nothing at all to classify: a usage error, before PyTorch loads
    r = cli_here('predict', ck, tmp_path / 'gone.jpg', photos / 'raw', cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'nothing to classify' in r.stderr, r.stderr
    # --debug: the traceback, for a bug report
    r = cli('predict', ck, tmp_path / 'bad.png', '--debug', cwd=tmp_path)
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'ImageError' in r.stderr
