#!/usr/bin/env python
"""Peak memory of `cnn-course predict` on huge pictures against the same command on a small photo.

    python bench/picture_memory.py [--side 12000] [--keep DIR]

Trains a tiny run once (1 epoch of the FC net on 300 real Fashion-MNIST images), writes a 420x380 JPEG photo
and SIDExSIDE pictures (a PNG written a row at a time, a JPEG, a 16-bit PNG), then runs `cnn-course predict`
on each in a fresh process, with `--max-pixels` raised to let them in, and reads each process's peak resident
memory from the kernel (`os.wait4`). Prints the peaks and the difference from the small photo's: the memory
the picture itself cost.
"""
import argparse, os, subprocess, sys, tempfile, time, zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    "Run `cnn-course ARGS` in a fresh process: (exit status, peak resident MB, seconds, stdout + stderr)."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - start, out.read().decode()


def png_rows(path, side, depth=8):
    "A SIDExSIDE PNG, grey (16-bit) or RGB (8-bit): a dark bar on a light ground, written a row at a time."
    def chunk(kind, data):
        return len(data).to_bytes(4, 'big') + kind + data + zlib.crc32(kind + data).to_bytes(4, 'big')
    if depth == 8: light, dark, colour = bytes([240, 238, 230]), bytes([30, 30, 60]), 2
    else: light, dark, colour = (60000).to_bytes(2, 'big'), (5000).to_bytes(2, 'big'), 0
    third = side // 3
    bar, plain = light * third + dark * third + light * (side - 2 * third), light * side
    deflate = zlib.compressobj(6)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR',
                                             side.to_bytes(4, 'big') * 2 + bytes([depth, colour, 0, 0, 0])))
        for y in range(side):
            data = deflate.compress(b'\x00' + (bar if side // 10 <= y < 9 * side // 10 else plain))
            if data: f.write(chunk(b'IDAT', data))
        f.write(chunk(b'IDAT', deflate.flush()) + chunk(b'IEND', b''))
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--side', type=int, default=12000, help='the huge pictures are SIDE x SIDE pixels')
    p.add_argument('--keep', type=Path, default=None, help='work in this folder and keep it (default: a '
                                                           'temporary one)')
    a = p.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix='picture_memory_'))
    work.mkdir(parents=True, exist_ok=True)
    code, _, _, out = run('train', '--model', 'fc', '--epochs', 1, '--limit-train', 300, '--limit-test', 100,
                          '--no-progress', '--checkpoint', work / 'ck', '--overwrite', cwd=work)
    assert code == 0, out
    from PIL import Image, ImageDraw
    photo = Image.new('RGB', (420, 380), (240, 238, 230))
    ImageDraw.Draw(photo).rectangle([140, 40, 280, 340], fill=(30, 30, 60))
    photo.save(work / 'photo.jpg', quality=90)
    side = a.side
    png_rows(work / 'huge.png', side)
    png_rows(work / 'huge16.png', side, depth=16)
    subprocess.run([sys.executable, '-c', 'import sys; from PIL import Image, ImageDraw\n'
                    f'im = Image.new("RGB", ({side}, {side}), (240, 238, 230))\n'
                    f'ImageDraw.Draw(im).rectangle([{side // 3}, {side // 10}, {2 * side // 3}, '
                    f'{9 * side // 10}], '
                    'fill=(30, 30, 60)); im.save(sys.argv[1], quality=85)', work / 'huge.jpg'], check=True)
    rows = []
    for name in ('photo.jpg', 'huge.png', 'huge.jpg', 'huge16.png'):
        code, peak, seconds, out = run('predict', work / 'ck', work / name, '--max-pixels', side * side,
                                       cwd=work)
        rows.append((name, code, peak, seconds, out.strip().splitlines()[-1] if out.strip() else ''))
    base = rows[0][2]
    print(f'cnn-course predict, {side}x{side} pictures against a 420x380 photo (peak resident memory of the '
          'process)')
    for name, code, peak, seconds, last in rows:
        size = f'{(work / name).stat().st_size / 1e6:7.2f} MB file'
        print(f'{name:11s} {size}  exit {code}  peak {peak:7.1f} MB  ({peak - base:+6.1f} MB)  '
              f'{seconds:5.1f} s  {last.split(": ", 1)[-1][:60]}')
    if a.keep is None:
        import shutil
        shutil.rmtree(work)


if __name__ == '__main__':
    main()
