#!/usr/bin/env python
"""Each idea of a recipe taken away (or added) alone, over several seeds: the ablation table of lesson 7b.

Run by hand, alone on an idle machine (never beside the tests: hours of CPU):
    python bench/ablation.py --recipe speedrun94 --seeds 3 [--only NAME,NAME] [--data-root DIR] [--threads 2]
Every run is `cnn-course train --recipe NAME` with one change (the variants below), trained on the 50,000
training images and scored once on the validation and the test set at the end, as they are and with lesson
7's five test-time views. Each finished run is appended to --out as a JSON line and skipped when the script
runs again, so a long table can be built over several sittings. The table printed at the end gives each
variant's mean (and spread) over the seeds found in --out.
"""
from __future__ import annotations
import argparse, dataclasses, json, os, platform, statistics, sys, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_course.core import torch_seed
from cnn_course.runs import make_run, recipe, score_run
from cnn_course.train import fit

# name: the settings that replace the recipe's (RunConfig fields); 'recipe' is the recipe itself
# (a variant that would not change the recipe is skipped)
VARIANTS = {
    'recipe': {},
    'no whitening': {'whiten': False},
    'Lookahead 0.5': {'lookahead': 0.5},
    'no label smoothing': {'label_smoothing': 0.0},
    'erase 0.25': {'erase': 0.25},
    'no erasing': {'erase': 0.0},
    'random flips': {'flip': True},
    'last batch-norm scale 1': {'model_kwargs': {'zero_init': False}},
    'batch 128': {'batch_size': 128},
    'batch 512': {'batch_size': 512},
}


def changes_nothing(name:str, base:str) -> bool:
    "True for a variant whose settings are the recipe's own."
    changes = VARIANTS[name]
    return bool(changes) and recipe(base, **changes) == recipe(base)


def train_once(name:str, base:str, seed:int, data_root:str) -> dict:
    "One run of the recipe with the variant's change: its seconds and final scores."
    cfg = recipe(base, **VARIANTS[name], seed=seed, data_root=data_root, download=False, device='cpu')
    start = time.perf_counter()
    torch_seed(cfg.seed)
    run = make_run(cfg)
    fit(run.net, run.optimizer, run.criterion, cfg.epochs, run.train_loader, run.val_loader, run.device,
        np.zeros((0, 5)), progress=False, scheduler=run.scheduler, callbacks=list(run.callbacks.values()),
        amp=cfg.amp, channels_last=cfg.channels_last)
    seconds = time.perf_counter() - start
    # after the clock: the test set once as it is, once with lesson 7's five test-time views
    plain, views = (score_run(dataclasses.replace(run, config=dataclasses.replace(cfg, tta=tta)))
                    for tta in (False, True))
    return dict(variant=name, recipe=base, seed=seed, seconds=round(seconds, 1), epochs=cfg.epochs,
                val=plain['val_accuracy'], test=plain['test_accuracy'], val_tta=views['val_accuracy'],
                test_tta=views['test_accuracy'],
                cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
                date=time.strftime('%Y-%m-%d'))


def table(rows:list, base:str):
    "Print each variant's mean and spread over its seeds."
    print(f'\n{base}: {"variant":26s} seeds  validation        test              test, 5 views     seconds')
    for name in VARIANTS:
        mine = [r for r in rows if r['variant'] == name and r['recipe'] == base]
        if not mine: continue
        cols = []
        for key in ('val', 'test', 'test_tta'):
            v = [r[key] for r in mine]
            spread = f'±{statistics.stdev(v):.4f}' if len(v) > 1 else ''
            cols.append(f'{statistics.mean(v):.4f}{spread:8s}')
        seconds = statistics.mean(r['seconds'] for r in mine)
        print(f'{"":{len(base) + 2}s}{name:26s} {len(mine):5d}  ' + '  '.join(f'{c:16s}' for c in cols) +
              f'  {seconds:.0f}')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipe', default='speedrun94', help='the recipe to take apart (default: speedrun94)')
    p.add_argument('--seeds', type=int, default=3, help='seeds 1..N of each variant (default: 3)')
    p.add_argument('--only', default=None,
                   help='comma-separated variants (default: all): ' + ', '.join(VARIANTS))
    p.add_argument('--data-root', default='./data')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all cores)')
    p.add_argument('--out', default='bench/ablation.jsonl', help='finished runs, one JSON line each')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    names = list(VARIANTS) if a.only is None else a.only.split(',')
    unknown = [n for n in names if n not in VARIANTS]
    if unknown: p.error(f'unknown variants {unknown}: choose from {", ".join(VARIANTS)}')
    out = Path(a.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    for seed in range(1, a.seeds + 1):  # seed by seed: a short sitting still covers every variant
        for name in names:
            if changes_nothing(name, a.recipe) or any(
                    r['variant'] == name and r['recipe'] == a.recipe and r['seed'] == seed for r in rows):
                continue
            row = train_once(name, a.recipe, seed, a.data_root)
            print(json.dumps(row), flush=True)
            with out.open('a') as f: f.write(json.dumps(row) + '\n')
            rows.append(row)
    table(rows, a.recipe)


if __name__ == '__main__':
    main()
