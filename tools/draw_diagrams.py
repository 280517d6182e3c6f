"""Draw the lessons' diagrams with matplotlib and store each in its lesson, as the attachment of the markdown
cell that shows it (`![...](attachment:NAME.png)`). An attachment travels inside the notebook, so the picture
shows in Colab, in Jupyter and on the rendered pages alike; a relative image path would not load in Colab.

    python tools/draw_diagrams.py            # draw all three and store them
    python tools/draw_diagrams.py --out DIR  # only write the PNG files into DIR, to look at them

- `conv_arithmetic.png` (lesson 1): a 3x3 kernel with stride 2 on a 5x5 input padded by 1, and the rule
  (W - F + 2P) / S + 1 that gives the 3x3 output.
- `resnet.png` (lesson 7): a residual block, and the small ResNet's layers with the size of each output.
- `grad_cam.png` (lesson 8): the Grad-CAM pipeline, forward and backward.
"""
import argparse, base64, io, json
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BLUE, ORANGE, GREEN, GREY = '#4c72b0', '#dd8452', '#55a868', '#8c8c8c'


def box(ax, x, y, w, h, text, colour=BLUE, size=10):
    "A rounded box centred on (x, y) with `text` in it."
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle='round,pad=0.02,rounding_size=0.08',
                                fc=colour, ec='none', alpha=0.18))
    ax.text(x, y, text, ha='center', va='center', fontsize=size)


def arrow(ax, start, end, colour='black', style='-|>', rad=0.0, **kw):
    "An arrow from `start` to `end`, bent by `rad`."
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour,
                                 connectionstyle=f'arc3,rad={rad}', lw=1.3, **kw))


def grid(ax, x0, y0, n, cell, colour='white', edge=GREY, ls='-'):
    "An n x n grid of squares of side `cell`, its lower left corner at (x0, y0)."
    for i in range(n):
        for j in range(n):
            ax.add_patch(Rectangle((x0 + j * cell, y0 + i * cell), cell, cell, fc=colour, ec=edge, lw=0.8,
                                   ls=ls))


def conv_arithmetic():
    "A 3x3 kernel, stride 2, on a 5x5 input padded by 1: a 3x3 output."
    fig, ax = plt.subplots(figsize=(8, 3.6))
    c = 0.5
    grid(ax, 0, 0, 7, c, colour='#f2f2f2', ls=':')            # the padding ring
    grid(ax, c, c, 5, c, colour='white', edge='black')         # the 5x5 input
    for (x, y), colour in (((0, 4), ORANGE), ((2, 4), GREEN)):  # the first two positions, 2 apart
        ax.add_patch(Rectangle((x * c, y * c), 3 * c, 3 * c, fc=colour, ec=colour, alpha=0.35, lw=2))
    ax.text(1.75, -0.35, 'input W = 5, padding P = 1\n(dotted: the zeros added)', ha='center', va='top',
            fontsize=10)
    ax.text(1.75, 3.75, 'kernel F = 3, stride S = 2', ha='center', fontsize=10)
    out = 5.2
    grid(ax, out, 1.0, 3, c, colour='white', edge='black')
    ax.add_patch(Rectangle((out, 1.0 + 2 * c), c, c, fc=ORANGE, alpha=0.5))
    ax.add_patch(Rectangle((out + c, 1.0 + 2 * c), c, c, fc=GREEN, alpha=0.5))
    ax.text(out + 0.75, 0.65, 'output: 3 x 3', ha='center', va='top', fontsize=10)
    arrow(ax, (3.7, 2.3), (5.1, 2.0))
    ax.text(7.3, 1.75, r'$\frac{W - F + 2P}{S} + 1$' + '\n\n' + r'$= \frac{5 - 3 + 2}{2} + 1 = 3$',
            ha='left', va='center', fontsize=13)
    ax.set_xlim(-0.3, 10.2); ax.set_ylim(-1.2, 4.1); ax.set_aspect('equal'); ax.axis('off')
    return fig


def res_block(ax, x):
    "A residual block: two conv-batch-norm layers beside the shortcut, added, then ReLU."
    ys = [5.2, 4.2, 3.4, 2.6, 1.6, 0.6]
    ax.text(x, 6.0, 'a residual block', ha='center', fontsize=11, weight='bold')
    box(ax, x, ys[0], 1.6, 0.5, 'x')
    box(ax, x - 0.5, ys[1], 2.2, 0.5, '3x3 conv, batch norm', ORANGE, 9)
    box(ax, x - 0.5, ys[2], 2.2, 0.45, 'ReLU', ORANGE, 9)
    box(ax, x - 0.5, ys[3], 2.2, 0.5, '3x3 conv, batch norm\n(scale starts at 0)', ORANGE, 8.5)
    box(ax, x, ys[4], 0.6, 0.5, '+', GREEN, 13)
    box(ax, x, ys[5], 1.6, 0.5, 'ReLU', GREY)
    for a, b in zip(ys[:3], ys[1:4]): arrow(ax, (x - 0.5, a - 0.27), (x - 0.5, b + 0.27))
    arrow(ax, (x - 0.5, ys[3] - 0.3), (x - 0.1, ys[4] + 0.2))
    arrow(ax, (x + 0.8, ys[0]), (x + 0.3, ys[4] + 0.05), colour=GREEN, rad=-0.45)
    ax.text(x + 1.45, 3.4, 'shortcut:\nthe identity, or\naverage pool and\n1x1 conv when the\nsize changes',
            fontsize=8, color=GREEN, va='center')
    arrow(ax, (x, ys[4] - 0.27), (x, ys[5] + 0.27))


def resnet_layers(ax, x):
    "The small ResNet's layers, each with the shape of its output."
    rows = [('picture', '1 x 28 x 28', GREY), ('stem: 3x3 conv, batch norm, ReLU', '32 x 28 x 28', ORANGE),
            ('residual block, stride 2', '64 x 14 x 14', GREEN),
            ('residual block, stride 2', '128 x 7 x 7', GREEN),
            ('residual block, stride 2', '256 x 4 x 4', GREEN), ('global average pool', '256', BLUE),
            ('linear', '10 class scores', BLUE)]
    ax.text(x, 6.0, "lesson 7's small ResNet", ha='center', fontsize=11, weight='bold')
    for i, (name, shape, colour) in enumerate(rows):
        y = 5.2 - 0.8 * i
        box(ax, x, y, 3.4, 0.5, name, colour, 9)
        ax.text(x + 1.9, y, shape, va='center', fontsize=9, color='#333333')
        if i: arrow(ax, (x, y + 0.53), (x, y + 0.27))


def resnet():
    "A residual block beside the small ResNet's layout."
    fig, ax = plt.subplots(figsize=(9, 4.6))
    res_block(ax, 1.6)
    resnet_layers(ax, 7.2)
    ax.set_xlim(-0.3, 10.5); ax.set_ylim(0.1, 6.3); ax.axis('off')
    return fig


def grad_cam():
    "Grad-CAM: forward to the class score, back to the last conv layer's maps, weights, sum, ReLU."
    fig, ax = plt.subplots(figsize=(10, 3.4))
    steps = [(0.8, 'picture', GREY), (2.7, 'conv layers', ORANGE), (4.8, 'last conv\nmaps $A^k$', ORANGE),
             (6.9, 'rest of the\nnetwork', BLUE), (8.9, 'score $y^c$\nof class c', BLUE)]
    for x, text, colour in steps: box(ax, x, 2.4, 1.5, 0.8, text, colour)
    for (a, *_), (b, *_) in zip(steps, steps[1:]): arrow(ax, (a + 0.78, 2.4), (b - 0.78, 2.4))
    ax.text(4.85, 3.1, 'forward', ha='center', fontsize=9)
    arrow(ax, (8.9, 1.95), (4.9, 1.95), colour=GREEN, rad=-0.25)
    ax.text(6.9, 1.05, r'backward: $\partial y^c / \partial A^k$', ha='center', fontsize=9, color=GREEN)
    weight = r'weight $\alpha_k$ = mean of' + '\n' + r'$\partial y^c / \partial A^k$ over pixels'
    box(ax, 2.7, 0.6, 2.6, 0.7, weight, GREEN, 9)
    box(ax, 6.0, 0.0, 3.0, 0.7, r'map = ReLU($\sum_k \alpha_k A^k$)' + '\nenlarged to the picture', GREEN, 9)
    arrow(ax, (4.2, 1.6), (3.4, 1.0), colour=GREEN)
    arrow(ax, (4.05, 0.5), (4.45, 0.15), colour=GREEN)
    ax.set_xlim(-0.1, 9.9); ax.set_ylim(-0.5, 3.4); ax.axis('off')
    return fig


DIAGRAMS = {'conv_arithmetic.png': ('01_conv_basics', conv_arithmetic),
            'resnet.png': ('07_resnet_augment', resnet),
            'grad_cam.png': ('08_inside', grad_cam)}


def png(fig) -> bytes:
    "The figure as PNG bytes, closed."
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight', metadata={'Software': None})
    plt.close(fig)
    return buf.getvalue()


def store(lesson:str, name:str, data:bytes):
    "Put `data` into `lesson` as the attachment `name` of the markdown cell that shows it."
    path = ROOT / 'nbs' / f'{lesson}.ipynb'
    nb = json.loads(path.read_text(encoding='utf-8'))
    cells = [c for c in nb['cells'] if f'attachment:{name}' in ''.join(c['source'])]
    if len(cells) != 1:
        raise SystemExit(f'{path.name}: {len(cells)} cells show attachment:{name}; expected 1')
    cells[0]['attachments'] = {name: {'image/png': base64.b64encode(data).decode()}}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', type=Path, help='write the PNG files into this folder instead of the lessons')
    a = p.parse_args()
    for name, (lesson, draw) in DIAGRAMS.items():
        data = png(draw())
        if a.out: a.out.mkdir(parents=True, exist_ok=True); (a.out / name).write_bytes(data)
        else: store(lesson, name, data)
        print(f'{name}: {len(data):,} bytes -> {a.out or lesson}')
