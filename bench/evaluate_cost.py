#!/usr/bin/env python
"""What `cnn-course evaluate DIR` costs once PyTorch is imported: building the run from its folder (model and
test data), scoring last.pt and best.pt and writing lesson 4's views, as it does now (one pass of the model
over the images for all the views; best.pt not scored again when it holds last.pt's weights) against the
earlier way (each view ran the model over the images again, and both checkpoints were scored), measured in
one run on the same folder.

Run by hand (never a timed test):  python bench/evaluate_cost.py [--dir CHECKPOINT_DIR] [--threads 2]
[--repeat 2]

Without --dir it first trains lesson 3's CNN for one epoch on the real Fashion-MNIST into a temporary folder
(so best.pt holds last.pt's weights, as in any run whose last epoch was its best); needs Debian's
dataset-fashion-mnist, or --data-root holding it. Both ways write their views into a temporary folder; the
best of --repeat runs is kept.
"""
from __future__ import annotations
import argparse, contextlib, io, platform, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from cnn_course.checkpoint import load_checkpoint
from cnn_course.cli import main as cli_main, save_views
from cnn_course.runs import _evaluate, evaluate_run, make_run, saved_config
from cnn_course.train import confusion_matrix, resolve_amp
from cnn_course.viz import plot_confusion_matrix, show_misclassified


def now_way(folder:Path, out:Path):
    "What evaluate does now: `evaluate_run`, then `save_views`."
    run = evaluate_run(folder)
    save_views(out, run)


def old_way(folder:Path, out:Path):
    """What evaluate did before: both checkpoints scored, then each view running the model over the images
    itself."""
    run = make_run(saved_config(folder))  # the model and the loaders, built as evaluate_run builds them
    for which in ('last', 'best'):
        load_checkpoint(folder / f'{which}.pt', run.net)
        _evaluate(run, run.test_loader)
    confusion_matrix(run.test_loader, run.net, run.device, len(run.classes))
    plot_confusion_matrix(run.test_loader, run.classes, run.net, run.device,
                          show=False).savefig(out / 'confusion.png', dpi=100)
    mistakes = show_misclassified(run.test_loader, run.classes, run.net, run.device, show=False)
    if mistakes is not None: mistakes.savefig(out / 'mistakes.png', dpi=100)


def best_of(fn, repeat:int) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            fn(Path(out))
            times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dir', type=Path, default=None, help='a checkpoint folder (default: train one epoch '
                                                          'into a temporary one)')
    p.add_argument('--data-root', default='/usr/share/datasets',
                   help='where the real Fashion-MNIST is (without --dir)')
    p.add_argument('--threads', type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    p.add_argument('--repeat', type=int, default=2)
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    folder = a.dir
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix='evaluate_bench_')) / 'ck'
        print(f'training lesson 3 CNN for 1 epoch on the real Fashion-MNIST into {folder} ...', flush=True)
        with contextlib.redirect_stdout(io.StringIO()):
            status = cli_main(['train', '--model', 'fashion_cnn', '--epochs', '1', '--data-root', a.data_root,
                               '--checkpoint', str(folder), '--out', str(folder.parent / 'out'),
                               '--no-progress'])
        if status:
            sys.exit(f'training failed (exit status {status}): is the real Fashion-MNIST in {a.data_root}?')
    with contextlib.redirect_stdout(io.StringIO()): run = evaluate_run(folder)
    same = run.scores.get('best', {}).get('epoch') == run.scores['last']['epoch']
    print(f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch '
          f'{torch.__version__}; '
          f"amp='auto' here: {resolve_amp('auto', 'cpu')[1]}; {time.strftime('%Y-%m-%d')}")
    print(f'{folder}: {run.config.model} on {len(run.test_loader.y):,} test images; best.pt and last.pt '
          f'{"are of the same epoch" if same else "are of different epochs"}')
    old = best_of(lambda out: old_way(folder, out), a.repeat)
    new = best_of(lambda out: now_way(folder, out), a.repeat)
    print(f'scores and views, before: {old:.2f} s; now: {new:.2f} s ({old / new:.2f}x), best of {a.repeat} '
          'each, building the run and loading the data included in both')


if __name__ == '__main__':
    main()
