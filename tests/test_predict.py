"Your own pictures: `load_image` on real PNG/JPEG files of every kind, `predict_images`, `load_run_model` and `cnn-course predict`."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cnn_course.checkpoint import CheckpointError
from cnn_course.data import CLASS_NAMES, IMAGE_SHAPES, ImageError, load_image
from cnn_course.models import FashionCNN
from cnn_course.train import predict_images

REPO = Path(__file__).resolve().parents[1]
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
        assert pixels[:, :3].max() < 8 and pixels[14, 12:16].min() > 200, name  # black surround, bright garment
        # the garment keeps its proportions: a third of the width of a 300x400 picture padded to 400x400
        assert 7 <= (pixels[14] > 128).sum() <= 9, (name, pixels[14])


def test_inversion_follows_the_background_and_the_option(tmp_path):
    light_on_dark = Image.new('L', (60, 60), 0)
    ImageDraw.Draw(light_on_dark).ellipse([15, 10, 45, 50], fill=230)
    assert load_image(light_on_dark, GREY)[1] is False  # already Fashion-MNIST's convention
    assert load_image(light_on_dark, GREY, invert=True)[1] is True
    photo = dark_on_light(tmp_path / 'p.png')
    assert load_image(photo, GREY, invert=False)[1] is False
    assert np.asarray(load_image(photo, GREY, invert=False)[0])[0].min() > 200  # left as it is: a light border
    colour, inverted = load_image(photo, COLOUR)
    assert colour.mode == 'RGB' and colour.size == (32, 32) and not inverted  # colour pictures: never automatically
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
    with pytest.raises(ImageError, match=r'empty\.png is empty \(0 bytes\)'): load_image(tmp_path / 'empty.png', GREY)
    with pytest.raises(ImageError, match=r'text\.jpg cannot be read as a picture'): load_image(tmp_path / 'text.jpg', GREY)
    with pytest.raises(ImageError, match=r'cut\.png cannot be read as a picture'): load_image(tmp_path / 'cut.png', GREY)
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
    assert torch.allclose(torch.tensor(sorted(probabilities, reverse=True)), expected.sort(descending=True).values, atol=1e-6)
    with pytest.raises(ValueError, match='10 scores per picture but 3 class names'):
        predict_images(net, [photo], ('a', 'b', 'c'), GREY)
    with pytest.raises(ValueError, match='top=0'): predict_images(net, [photo], CLASS_NAMES['fashion-mnist'], GREY, top=0)


def cli(*args, cwd):
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'CNN_COURSE_QUICK': '1'}
    env.pop('IN_TEST', None)
    return subprocess.run([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cnn_course_predict_from_either_run_folder(tmp_path):
    "The command on both folders `train` writes, the options, and the failures a student meets."
    r = cli('train', '--model', 'fc', '--epochs', 1, '--limit-train', 300, '--limit-test', 100, '--no-progress',
            '--data-root', tmp_path / 'data', '--checkpoint', tmp_path / 'ck', '--out', tmp_path / 'out', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    photo = dark_on_light(tmp_path / 'photo.jpg')
    light = Image.new('L', (28, 28), 0)
    ImageDraw.Draw(light).rectangle([10, 4, 18, 24], fill=255)
    light.save(tmp_path / 'light.png')
    from cnn_course.runs import load_run_model, predict_run
    for folder in ('ck', 'out'):
        r = cli('predict', tmp_path / folder, photo, tmp_path / 'light.png', cwd=tmp_path)
        assert r.returncode == 0 and r.stderr == '', r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2 and lines[0].startswith(f'{photo}: ') and lines[0].endswith('(inverted: light background)')
        assert lines[1].startswith(f'{tmp_path / "light.png"}: ') and 'inverted' not in lines[1]
        expected = predict_run(tmp_path / folder, [photo], device='cpu')[0]['top']  # the flat net: images flattened
        assert lines[0].split(': ', 1)[1].startswith(', '.join(f'{c} {p:.1%}' for c, p in expected))
    net, cfg, source = load_run_model(tmp_path / 'out', device='cpu')
    assert source.name == 'model.pt' and cfg.model == 'fc' and net.input_shape == (784,)
    r = cli('predict', tmp_path / 'ck', photo, '--top', 1, '--invert', 'no', cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count('%') == 1 and 'inverted' not in r.stdout
    (tmp_path / 'empty.jpg').write_bytes(b'')
    (tmp_path / 'notes.png').write_text('shopping list')
    bare = tmp_path / 'bare'
    bare.mkdir()
    (bare / 'model.pt').write_bytes((tmp_path / 'out' / 'model.pt').read_bytes())
    (tmp_path / 'no-config').mkdir()
    (tmp_path / 'no-config' / 'model.pt').write_bytes((tmp_path / 'out' / 'model.pt').read_bytes())
    (tmp_path / 'no-config' / 'run.json').write_text(json.dumps({'command': 'train'}))
    for args, fragment in [((tmp_path / 'ck', tmp_path / 'empty.jpg'), 'empty.jpg is empty (0 bytes)'),
                           ((tmp_path / 'ck', tmp_path / 'notes.png'), 'notes.png cannot be read as a picture'),
                           ((tmp_path / 'ck', tmp_path / 'nope.png'), 'nope.png: no such file'),
                           ((bare, photo), 'has model.pt but no run.json'),
                           ((tmp_path / 'no-config', photo), 'records no run config'),
                           ((tmp_path / 'data', photo), 'it holds no best.pt or last.pt or model.pt'),
                           ((tmp_path / 'ck', photo, '--invert', 'maybe'), "argument --invert: invalid choice: 'maybe'")]:
        r = cli('predict', *args, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith('cnn-course: error: ') and r.stderr.count('\n') == 1, r.stderr
        assert fragment in r.stderr and r.stdout == '', (fragment, r.stderr)
    with pytest.raises(CheckpointError, match='no run.json'): load_run_model(bare)
