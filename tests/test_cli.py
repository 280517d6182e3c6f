"""The `cnn-course` command in real processes (some refusals through the same `main` in this one): help,
one-line
errors before training, lesson 3's options, a real Fashion-MNIST run."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_here

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')
OPTIONS = ['--model', '--dataset', '--epochs', '--batch-size', '--lr', '--optimizer', '--scheduler',
           '--patience',
           '--tensorboard', '--device', '--out', '--seed', '--data-root', '--download', '--limit-train',
           '--limit-test', '--no-progress', '--checkpoint', '--overwrite', '--val-fraction']


def cli(*args, cwd, quick=False, timeout=120):
    "Run `python -m cnn_course.cli ARGS` in a fresh process; quick mode only when asked."
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'CNN_COURSE_QUICK')}
    if quick: env['CNN_COURSE_QUICK'] = '1'
    env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run([sys.executable, '-m', 'cnn_course.cli', *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_usage_error(r, *fragments):
    """Exit status 2, exactly one line on stderr in the command's format, containing every fragment, nothing
    trained."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith('cnn-course: error: ') and r.stderr.count('\n') == 1, r.stderr
    for f in fragments: assert f in r.stderr, r.stderr
    assert 'Epoch [' not in r.stdout, r.stdout


@pytest.fixture(scope='session')
def data_root(tmp_path_factory):
    "One data folder for the whole session, so Debian's Fashion-MNIST is decompressed at most once."
    return tmp_path_factory.mktemp('data')


def test_help_lists_every_option_with_its_default(tmp_path):
    r = cli('train', '--help', cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == ''
    text = ' '.join(r.stdout.split())  # argparse wraps lines
    for option in OPTIONS: assert option in text, option
    for default in ['(default: per dataset, fashion_cnn for fashion-mnist, mnist_cnn for mnist, cnn for '
                    'cifar10, cnn for colour-fashion)',
                    '(default: fashion-mnist)', '(default: 5)', '(default: 100)', '(default: 0.001)',
                    '(default: adam)',
                    '(default: none)', '(default: off, train all --epochs)', '(default: off)',
                    '(default: auto)',
                    '(default: runs/{model}-{dataset})', '(default: 123)', '(default: ./data)',
                    '(default: True)', '(default: all;', '(default: False)']:
        assert default in text, default
    for choice in ['mnist_cnn', 'fc', 'cnn', 'fashion_cnn', 'mnist', 'fashion-mnist', 'cifar10', 'cuda',
                   'mps', 'sgd', 'plateau']:
        assert choice in text, choice


def test_version_and_top_level_help(tmp_path):
    from cnn_course import __version__
    r = cli('--version', cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f'cnn-course {__version__}'
    r = cli('--help', cwd=tmp_path)
    assert r.returncode == 0 and 'train' in r.stdout
    assert_usage_error(cli(cwd=tmp_path), 'the following arguments are required')


@pytest.mark.parametrize('args, fragment', [
    (['--model', 'vgg16'], "argument --model: invalid choice: 'vgg16'"),
    (['--dataset', 'imagenet'], "argument --dataset: invalid choice: 'imagenet'"),
    (['--epochs', '0'], 'argument --epochs: must be greater than 0'),
    (['--batch-size', '-3'], 'argument --batch-size: must be greater than 0'),
    (['--lr', '0'], 'argument --lr: must be greater than 0'),
    (['--lr', 'inf'], 'argument --lr: must be greater than 0'),
    (['--limit-train', 'many'], "argument --limit-train: expected int > 0, got 'many'"),
    (['--optimizer', 'rmsprop'], "argument --optimizer: invalid choice: 'rmsprop'"),
    (['--scheduler', 'cosine'], "argument --scheduler: invalid choice: 'cosine'"),
    (['--patience', '0'], "argument --patience: must be greater than 0, got '0'"),
    (['--patience', '-2'], "argument --patience: must be greater than 0, got '-2'"),
    (['--patience', '1.5'], "argument --patience: expected int > 0, got '1.5'"),
    (['--shift', '-2'], "argument --shift: must be at least 0, got '-2'"),
    (['--erase', '2'], "argument --erase: must be from 0 to 1, got '2'"),
    (['--nonsense'], 'unrecognized arguments: --nonsense'),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, fragment):
    r = cli('train', *args, cwd=tmp_path)
    assert_usage_error(r, fragment)
    assert r.stdout == '' and not (tmp_path / 'runs').exists()


def test_model_that_does_not_fit_the_data_fails_before_training(tmp_path, data_root):
    out = tmp_path / 'out'
    r = cli('train', '--model', 'cnn', '--dataset', 'fashion-mnist', '--data-root', data_root, '--out', out,
            '--limit-train', 200, '--limit-test', 100, cwd=tmp_path, quick=True)
    assert_usage_error(r, '--model cnn does not fit --dataset fashion-mnist', '(3, 32, 32)', '(1, 28, 28)',
                       'For fashion-mnist, use --model fashion_cnn, --model mnist_cnn, --model fc or --model '
                       'resnet.')
    assert not out.exists()


def test_unwritable_out_fails_before_training(tmp_path, data_root):
    a_file = tmp_path / 'a-file'
    a_file.write_text('not a folder')
    out = a_file / 'run'
    r = cli('train', '--data-root', data_root, '--out', out, '--limit-train', 200, '--limit-test', 100,
            cwd=tmp_path, quick=True)
    assert_usage_error(r, f'--out {out}: cannot create this folder: {a_file} is a file, not a folder')
    assert a_file.read_text() == 'not a folder'


def test_unwritable_tensorboard_dir_fails_before_training(tmp_path, data_root):
    pytest.importorskip('tensorboard')
    a_file = tmp_path / 'a-file'
    a_file.write_text('not a folder')
    log_dir, out = a_file / 'tb', tmp_path / 'out'
    r = cli('train', '--tensorboard', log_dir, '--data-root', data_root, '--out', out, '--limit-train', 200,
            '--limit-test', 100, cwd=tmp_path, quick=True)
    assert_usage_error(r, f'--tensorboard {log_dir}: cannot create this folder: {a_file} is a file, not a '
                          'folder')
    assert a_file.read_text() == 'not a folder' and not (out / 'run.json').exists()


@pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0,
                    reason='needs POSIX permissions and a non-root user')
def test_read_only_out_fails_before_training(tmp_path, data_root):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    try:
        r = cli('train', '--data-root', data_root, '--out', locked, '--limit-train', 200, '--limit-test', 100,
                cwd=tmp_path, quick=True)
        assert_usage_error(r, f'--out {locked}: cannot write in this folder: Permission denied')
    finally: locked.chmod(0o700)


def test_missing_dataset_offline_names_the_path(tmp_path):
    empty = tmp_path / 'empty-root'
    r = cli_here('train', '--dataset', 'cifar10', '--model', 'cnn', '--data-root', empty, '--out',
                 tmp_path / 'out', cwd=tmp_path, quick=False)
    # offline, torchvision's download fails at once; the notebook checks --no-download
    assert_usage_error(r, '--dataset cifar10: CIFAR10 not found', str(empty / 'cifar-10-batches-py'))
    assert not (tmp_path / 'out').exists()


def read_run(out):
    "run.json and the history of a finished run, after checking that history.npy and history.csv agree."
    history = np.load(out / 'history.npy')
    assert np.array_equal(history, np.loadtxt(out / 'history.csv', delimiter=',', skiprows=1, ndmin=2))
    return json.loads((out / 'run.json').read_text()), history


@pytest.mark.long
def test_real_fashion_mnist_run(tmp_path, data_root):
    "What CI relies on: the command as a user types it, default model and recipe, on the real images."
    if not (DEBIAN_FASHION_MNIST / 'train-images-idx3-ubyte.gz').exists():
        pytest.skip(f'real Fashion-MNIST is not installed in {DEBIAN_FASHION_MNIST} (apt-get install '
                    'dataset-fashion-mnist)')
    out = tmp_path / 'run'
    # One epoch of 84 steps (10,000 images, a sixth held out to validate on, batches of 100): lesson 3's
    # fashion_cnn with
    # Adam at 0.001 (the defaults) got 83-84% on both sets here; chance is 10%.
    r = cli('train', '--epochs', 1, '--limit-train', 10000, '--limit-test', 2000,
            '--data-root', data_root, '--out', out, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'synthetic' not in r.stdout + r.stderr  # real data, not quick mode's stand-in
    # output to a pipe: no progress-bar frames
    assert '\r' not in r.stdout + r.stderr and 'it/s' not in r.stderr
    assert 'training fashion_cnn on fashion-mnist' in r.stdout and 'Epoch [1/1], loss: ' in r.stdout
    last = r.stdout.splitlines()[-1]
    assert (f'to {out}' in last and 'validation accuracy: ' in last and
            'held-out training images; test accuracy: ' in last)
    assert 'scored: the weights of epoch 1 (the last)' in last  # the line says which weights it scored
    assert (sorted(p.name for p in out.iterdir()) == ['curves.png', 'history.csv', 'history.npy', 'model.pt',
                                                      'run.json'])
    run, history = read_run(out)
    assert (run['n_train'], run['n_val'], run['n_test']) == (8333, 1667, 2000) and run['elapsed_seconds'] > 0
    assert (run['args']['model'], run['args']['optimizer'], run['args']['lr'], run['args']['scheduler']) == \
           ('fashion_cnn', 'adam', 0.001, 'none')
    assert run['args']['out'] == str(out) and run['lrs'] == [0.001] and run['early_stopping'] is None
    assert run['test_accuracy'] >= 0.75, run
    assert f"test accuracy: {run['test_accuracy']:.4f}" in r.stdout
    assert history.shape == (1, 5) and run['val_accuracy'] == history[0, 4] and not run['validated_on_test']
    assert f"validation accuracy: {run['val_accuracy']:.4f}" in r.stdout and run['val_accuracy'] >= 0.75
    assert (out / 'history.csv').read_text().splitlines()[0] == 'epoch,train_loss,train_acc,val_loss,val_acc'
    assert (out / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    import torch
    from cnn_course.models import FashionCNN
    FashionCNN().load_state_dict(torch.load(out / 'model.pt', weights_only=True))


def test_plateau_patience_and_tensorboard_run(tmp_path, data_root):
    """Lesson 3's options together; the TensorBoard log, read back by TensorBoard's own reader, matches
    history.csv."""
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from cnn_course.train import TB_TAGS
    out, log_dir = tmp_path / 'run', tmp_path / 'tb'
    r = cli_here('train', '--epochs', 2, '--limit-train', 500, '--limit-test', 200, '--scheduler', 'plateau',
                 '--patience', 3, '--tensorboard', log_dir, '--data-root', data_root, '--out', out,
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run, history = read_run(out)
    assert run['args']['scheduler'] == 'plateau' and run['args']['patience'] == 3
    assert run['args']['tensorboard'] == str(log_dir.resolve())
    # plateau waits 4 epochs before lowering
    assert run['epochs_completed'] == 2 and run['lrs'] == [0.001, 0.001]
    best = int(history[history[:, 3].argmin(), 0])
    assert run['early_stopping'] == {'patience': 3, 'triggered': False, 'stopped_epoch': None,
                                     'best_epoch': best, 'best_val_loss': history[best - 1, 3]}
    # the best weights were kept
    assert run['weights_epoch'] == best and run['val_accuracy'] == history[best - 1, 4]
    events = list(log_dir.glob('events.out.tfevents.*'))
    assert len(events) == 1 and events[0].stat().st_size > 0
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    assert set(acc.Tags()['scalars']) == set(TB_TAGS.values())
    expected = {'train_loss': history[:, 1], 'train_acc': history[:, 2], 'val_loss': history[:, 3],
                'val_acc': history[:, 4], 'lr': run['lrs']}
    for key, values in expected.items():
        scalars = acc.Scalars(TB_TAGS[key])
        assert [s.step for s in scalars] == [1, 2], key
        # TensorBoard stores 32-bit floats
        assert [s.value for s in scalars] == [float(np.float32(v)) for v in values], key


def test_early_stopping_stops_and_keeps_the_best_epoch(tmp_path, data_root):
    # A learning rate far below float32 resolution leaves every weight unchanged, so the test loss repeats
    # exactly:
    # epoch 1 stays the best, and patience 1 must stop after epoch 2. (mnist_cnn: no batch-norm statistics
    # that move.)
    out = tmp_path / 'run'
    r = cli_here('train', '--model', 'mnist_cnn', '--optimizer', 'sgd', '--lr', '1e-30', '--patience', 1,
                 '--epochs', 4,
                 '--limit-train', 300, '--limit-test', 100, '--data-root', data_root, '--out', out,
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ('early stopping: val_loss has not improved for 1 epochs' in r.stdout and
            'Epoch [3/4]' not in r.stdout)
    run, history = read_run(out)
    assert history.shape == (2, 5) and history[0, 3] == history[1, 3]
    assert run['epochs_completed'] == 2 and run['lrs'] == [1e-30, 1e-30] and run['weights_epoch'] == 1
    assert run['early_stopping'] == {'patience': 1, 'triggered': True, 'stopped_epoch': 2, 'best_epoch': 1,
                                     'best_val_loss': history[0, 3]}
    assert run['val_accuracy'] == history[0, 4]


def test_console_script(tmp_path):
    exe = Path(sys.executable).with_name('cnn-course')
    script = str(exe) if exe.exists() else shutil.which('cnn-course')
    if script is None: pytest.skip('the cnn-course console script is not installed (pip install -e .)')
    r = subprocess.run([script, 'train', '--epochs', '-1'], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert_usage_error(r, 'argument --epochs')
    r = subprocess.run([script, 'train', '--help'], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '--limit-train' in r.stdout


def _cli(*args, env):
    return [sys.executable, '-m', 'cnn_course.cli', *args]


@pytest.mark.long
@pytest.mark.parametrize('recipe, extra', [('resnet', ['--flip']), ('speedrun94', ['--lookahead', '0.5'])])
def test_cli_resumes_a_killed_run(tmp_path, recipe, extra):
    """train --recipe resnet --checkpoint (lesson 7: the ResNet, augmentation, one-cycle, bf16 where native),
    SIGKILL mid-run, resume: the same history and final weights, bit for bit, as a run never interrupted;
    evaluate --tta scores it. The same for lesson 7b's speed run, with Lookahead's slow weights in the
    checkpoint."""
    import signal, time, torch
    from cnn_course.checkpoint import read_checkpoint
    env = {k: v for k, v in os.environ.items() if k not in ('IN_TEST',)}
    # quick mode: a synthetic stand-in if Fashion-MNIST is not here
    env.update(CNN_COURSE_QUICK='1', OMP_NUM_THREADS='1')
    # the recipe itself, on a few pictures (600: 500 to train on, 4 steps an epoch); its augmentation draws
    # random numbers
    # every epoch (resumed too), --flip adds the mirror images' draws
    common = ['train', '--recipe', recipe, '--epochs', '4', '--limit-train', '600', '--limit-test', '300',
              '--no-progress', '--data-root', str(tmp_path / 'data'), *extra]
    full = subprocess.run(_cli(*common, '--checkpoint', str(tmp_path / 'full'), '--out',
                               str(tmp_path / 'full_out'), env=env),
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert full.returncode == 0, full.stderr
    h_full = read_checkpoint(tmp_path / 'full' / 'last.pt')['history']
    ck = tmp_path / 'killed'
    proc = subprocess.Popen(_cli(*common, '--checkpoint', str(ck), '--out', str(tmp_path / 'killed_out'),
                                 env=env),
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (ck / 'last.pt').exists() and read_checkpoint(ck / 'last.pt')['epoch'] >= 2: break
        time.sleep(0.05)
    assert proc.poll() is None, 'the run finished before it could be killed'
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(ck / 'last.pt')['epoch']
    assert 2 <= killed_at < 4
    resumed = subprocess.run(_cli('resume', str(ck), '--no-progress', env=env), env=env, capture_output=True,
                             text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    h_resumed = read_checkpoint(ck / 'last.pt')['history']
    assert np.array_equal(np.asarray(h_resumed), np.asarray(h_full)), (h_resumed, h_full)
    # the resumed run leaves the result files an uninterrupted one leaves, in the --out it was started with
    assert ('wrote history.csv, history.npy, curves.png, model.pt, run.json to '
            in resumed.stdout.splitlines()[-1])
    assert np.array_equal(np.load(tmp_path / 'killed_out' / 'history.npy'),
                          np.load(tmp_path / 'full_out' / 'history.npy'))
    full_run, killed_run = (json.loads((tmp_path / f / 'run.json').read_text())
                            for f in ('full_out', 'killed_out'))
    for key in ('val_accuracy', 'test_accuracy', 'lrs', 'weights_epoch', 'config', 'n_train', 'n_val',
                'n_test', 'tta'):
        assert full_run[key] == killed_run[key], key
    # the speed run scores with its test-time views, and says so
    assert killed_run['tta'] == (recipe == 'speedrun94')
    assert ('with test-time augmentation' in resumed.stdout.splitlines()[-1]) == (recipe == 'speedrun94')
    assert (killed_run['command'] == 'resume' and killed_run['config']['model'] == 'resnet' and
            (killed_run['config']['flip'] or killed_run['config']['lookahead'] == 0.5))
    assert (killed_run['config']['shift'] == 2 and killed_run['config']['erase'] == 0.5 and
            killed_run['config']['scheduler'] == 'onecycle')
    weights = [torch.load(tmp_path / f / 'model.pt', weights_only=True) for f in ('full_out', 'killed_out')]
    assert (weights[0].keys() == weights[1].keys() and
            all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]))
    ev = cli_here('evaluate', str(ck), cwd=tmp_path)  # in this process: PyTorch is already imported here
    assert (ev.returncode == 0 and 'best (epoch' in ev.stdout and
            'last (epoch 4)' in ev.stdout), ev.stdout + ev.stderr
    # test-time augmentation: the same checkpoints scored over five views; a different score from the plain
    # one
    tta = cli_here('evaluate', str(ck), '--tta', cwd=tmp_path)
    assert tta.returncode == 0 and tta.stdout.count('with TTA (5 views)') == 2, tta.stdout + tta.stderr
    plain_last = next(l for l in ev.stdout.splitlines() if l.startswith('last'))
    tta_last = next(l for l in tta.stdout.splitlines() if l.startswith('last'))
    assert tta_last.split(' on ')[0] != plain_last.split(' on ')[0]


def test_cli_resume_of_a_folder_without_checkpoints_is_a_clear_error(tmp_path):
    out = cli_here('resume', tmp_path, cwd=tmp_path, quick=False)
    assert (out.returncode == 2 and out.stderr.startswith('cnn-course: error: resume') and
            str(tmp_path) in out.stderr)


def test_resume_after_a_left_over_image(tmp_path, data_root):
    """601 images in batches of 100 leave one over, which batch norm cannot train on: train and resume drop it
    alike."""
    from cnn_course.checkpoint import read_checkpoint
    ck = tmp_path / 'ck'
    r = cli_here('train', '--limit-train', 601, '--limit-test', 100, '--batch-size', 100, '--epochs', 1,
                 '--checkpoint', ck,
                 '--out', tmp_path / 'out', '--data-root', data_root, '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / 'out' / 'run.json').read_text())
    # 601 images, 100 of them held out (a sixth): 501 to train on, which leave one over
    assert (run['n_train'] == 501 and run['config']['batch_size'] == 100 and
            run['config']['limit_train'] == 601)
    r = cli_here('resume', ck, '--epochs', 2, '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the new target, not the old plan
    assert 'resumed from epoch 1 of 2' in r.stdout and 'Epoch [2/2]' in r.stdout
    assert read_checkpoint(ck / 'last.pt')['epoch'] == 2


def test_every_model_in_the_table_trains_from_the_command(tmp_path, data_root):
    "Each MODELS entry is reachable with --model, on a dataset it fits (lesson 4's cifar_cnn included)."
    from cnn_course.models import MODELS
    from cnn_course.cli import MODEL_HELP
    assert list(MODEL_HELP) == list(MODELS)
    r = cli_here('train', '--dataset', 'cifar10', '--model', 'cifar_cnn', '--optimizer', 'sgd', '--lr',
                 '0.01', '--epochs', 1,
                 '--limit-train', 200, '--limit-test', 100, '--data-root', data_root, '--out', tmp_path / 'c',
                 '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / 'c' / 'run.json').read_text())
    assert run['config']['model'] == 'cifar_cnn' and run['epochs_completed'] == 1


def test_abbreviated_option_is_refused_and_the_closest_named(tmp_path):
    r = cli('train', '--epoch', 2, cwd=tmp_path)
    assert_usage_error(r, 'unrecognized arguments: --epoch 2', '(did you mean --epochs?)')
    r = cli('resume', tmp_path, '--epoch', 2, cwd=tmp_path)
    assert_usage_error(r, 'unrecognized arguments: --epoch 2', '(did you mean --epochs?)')
    assert_usage_error(cli('train', '--no-progres', cwd=tmp_path), 'did you mean --no-progress?')


def test_a_second_train_into_the_same_folder_is_refused(tmp_path, data_root):
    out = tmp_path / 'run'
    args = ('train', '--model', 'mnist_cnn', '--epochs', 1, '--limit-train', 200, '--limit-test', 100,
            '--data-root', data_root, '--out', out, '--no-progress')
    assert cli_here(*args, cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = cli_here(*args, '--seed', 7, cwd=tmp_path)
    assert_usage_error(r, f'--out {out} already holds the results of a run',
                       'pass --overwrite to replace them')
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    r = cli_here(*args, '--seed', 7, '--overwrite', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / 'run.json').read_text())['config']['seed'] == 7


def test_messages_name_options_and_commands_not_python(tmp_path, data_root):
    """What a command-line user reads: options (--no-download, --data-root, --overwrite) and commands, never
    Python calls."""
    empty = tmp_path / 'empty-root'
    r = cli_here('train', '--dataset', 'mnist', '--data-root', empty, '--no-download', '--out',
                 tmp_path / 'o', cwd=tmp_path, quick=False)
    assert_usage_error(r, '--dataset mnist: MNIST not found', '(--no-download)', 'and --download',
                       '--data-root')
    assert 'download=' not in r.stderr and 'root=' not in r.stderr
    r = cli('train', '--out', '/proc/cnn_course_forbidden', cwd=tmp_path)
    assert_usage_error(r, '--out /proc/cnn_course_forbidden: cannot create this folder',
                       'nothing can be made inside /proc')
    ck = tmp_path / 'ck'
    args = ('train', '--model', 'mnist_cnn', '--limit-train', 200, '--limit-test', 100, '--data-root',
            data_root, '--no-progress', '--checkpoint', ck)
    assert cli_here(*args, '--epochs', 2, '--out', tmp_path / 'a', cwd=tmp_path).returncode == 0
    r = cli_here(*args, '--epochs', 1, '--out', tmp_path / 'b', cwd=tmp_path)
    assert_usage_error(r, f'--checkpoint {ck} already holds a run trained for 2 epochs',
                       f'`cnn-course resume {ck}`', '--overwrite')
    assert 'resume(' not in r.stderr and 'Checkpoint(' not in r.stderr
    r = cli_here('resume', tmp_path / 'nothing-here', cwd=tmp_path, quick=False)
    assert_usage_error(r, 'no such folder', '`cnn-course train --checkpoint DIR`')
    r = cli_here('evaluate', tmp_path, cwd=tmp_path, quick=False)
    assert_usage_error(r, 'it holds no best.pt or last.pt', '`cnn-course train --checkpoint DIR`')


@pytest.mark.parametrize('command', ['resume', 'evaluate'])
def test_resume_and_evaluate_help_describe_the_command(tmp_path, command):
    r = cli(command, '--help', cwd=tmp_path)
    assert r.returncode == 0 and 'cnn-course train --checkpoint DIR' in ' '.join(r.stdout.split())


@pytest.mark.parametrize('args, fragment', [
    (['--model', 'cnn'], '--model cnn does not fit --dataset fashion-mnist'),
    (['--model', 'fashion_cnn', '--batch-size', '1'], '--model fashion_cnn uses batch norm'),
    (['--out', 'a-file/run'], 'is a file, not a folder'),
    (['--checkpoint', 'a-file/ck'], 'is a file, not a folder'),
    (['--tensorboard', 'a-file/tb'], 'is a file, not a folder'),
    (['--out', 'done'], 'already holds the results of a run'),
])
def test_option_checks_answer_before_pytorch_is_imported(tmp_path, args, fragment):
    """The checks a wrong option meets first need no PyTorch (whose import takes seconds): it is never
    imported."""
    (tmp_path / 'a-file').write_text('not a folder')
    (tmp_path / 'done').mkdir()
    (tmp_path / 'done' / 'run.json').write_text('{}')
    code = ('import sys; from cnn_course.cli import main; status = main(sys.argv[1:]); '
            'print("torch imported:", "torch" in sys.modules); raise SystemExit(status)')
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    r = subprocess.run([sys.executable, '-c', code, 'train', *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
    assert r.stdout.strip() == 'torch imported: False'


def test_val_fraction_zero_validates_on_the_test_set_with_a_warning(tmp_path, data_root):
    out = tmp_path / 'run'
    r = cli_here('train', '--model', 'mnist_cnn', '--epochs', 1, '--limit-train', 300, '--limit-test', 100,
                 '--val-fraction', 0, '--data-root', data_root, '--out', out, '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if 'warning' in line.lower()]
    assert warning == ['cnn-course: warning: --val-fraction 0 validates on the test set, as the source did: '
                       'early stopping, the schedule and best.pt are then chosen by the test set, so its '
                       'accuracy is no longer an unbiased estimate'], r.stderr
    run, history = read_run(out)
    assert run['validated_on_test'] and (run['n_train'], run['n_val'], run['n_test']) == (300, 100, 100)
    assert run['val_accuracy'] == run['test_accuracy'] == history[0, 4]
    assert 'which also served as the validation set (--val-fraction 0)' in r.stdout.splitlines()[-1]
    r = cli_here('train', '--model', 'mnist_cnn', '--epochs', 1, '--limit-train', 300, '--limit-test', 100,
                 '--val-fraction', 0.2,
                 '--data-root', data_root, '--out', tmp_path / 'held', '--no-progress', cwd=tmp_path)
    run, history = read_run(tmp_path / 'held')
    assert r.returncode == 0 and 'warning' not in r.stderr and (run['n_train'], run['n_val']) == (240, 60)
    assert run['val_accuracy'] == history[0, 4] and run['config']['val_fraction'] == 0.2


def test_evaluate_writes_lesson_4s_views(tmp_path, data_root):
    """evaluate DIR [--split val]: scores, then per-class CSV, confusion matrix and mistakes of best.pt, named
    on its last line."""
    import csv
    from cnn_course.checkpoint import read_checkpoint
    from cnn_course.data import CLASS_NAMES
    ck = tmp_path / 'ck'
    r = cli_here('train', '--dataset', 'cifar10', '--model', 'cifar_cnn', '--optimizer', 'sgd', '--lr',
                 '0.05', '--epochs', 2,
                 '--limit-train', 300, '--limit-test', 120, '--checkpoint', ck, '--out', tmp_path / 'out',
                 '--data-root', data_root, '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    best = read_checkpoint(ck / 'best.pt')
    for split, n in (('test', 120), ('val', 60)):
        r = (cli if split == 'test' else cli_here)('evaluate', ck, '--split', split, cwd=tmp_path, quick=True)
        assert r.returncode == 0, r.stderr
        files = [f'per_class_{split}.csv', f'confusion_{split}.png', f'misclassified_{split}.png']
        assert (r.stdout.splitlines()[-1] == f'wrote {", ".join(files)} (best.pt, epoch {best["epoch"]}) to '
                                             f'{ck}')
        rows = list(csv.DictReader(open(ck / files[0])))
        assert [row['class'] for row in rows] == list(CLASS_NAMES['cifar10'])
        assert sum(int(row['total']) for row in rows) == n
        correct = sum(int(row['correct']) for row in rows)
        best_line = next(line for line in r.stdout.splitlines() if line.startswith('best'))
        assert f'accuracy {correct / n:.4f} on {n} images' in best_line, (best_line, correct)
        if split == 'val': assert correct / n == best['history'][-1, 4]  # best.pt's own validation accuracy
        for png in files[1:]: assert (ck / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert_usage_error(cli_here('evaluate', ck, '--split', 'train', cwd=tmp_path, quick=False),
                       "argument --split: invalid choice: 'train'")


KILL_BEFORE_RESULTS = """
import os, signal, sys
import cnn_course.cli as cli
# killed after the last checkpoint, before the results
def die(*args, **kwargs): os.kill(os.getpid(), signal.SIGKILL)
cli.save_results = die
raise SystemExit(cli.main(sys.argv[1:]))
"""


def test_resume_writes_the_results_a_run_killed_at_the_end_never_wrote(tmp_path, data_root):
    """Killed after its last checkpoint but before its results: `resume` has nothing to train, and writes the
    results."""
    (tmp_path / 'kill.py').write_text(KILL_BEFORE_RESULTS)
    common = ['--model', 'mnist_cnn', '--epochs', '2', '--limit-train', '300', '--limit-test', '100',
              '--patience', '5', '--data-root', str(data_root), '--no-progress']
    # TMPDIR: killed, the process runs no exit handlers; its synthetic data stays in the test's folder, not
    # /tmp
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'CNN_COURSE_QUICK': '1', 'TMPDIR': str(tmp_path)}
    env.pop('IN_TEST', None)
    r = subprocess.run([sys.executable, str(tmp_path / 'kill.py'), 'train', *common, '--checkpoint',
                        str(tmp_path / 'ck'),
                        '--out', str(tmp_path / 'out')], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300)
    assert r.returncode == -9 and not (tmp_path / 'out' / 'run.json').exists(), r.stderr
    r = cli_here('resume', tmp_path / 'ck', '--no-progress', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'has no results of this run yet: writing them from' in r.stdout
    whole = cli_here('train', *common, '--out', tmp_path / 'whole', cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    got, want = (json.loads((tmp_path / f / 'run.json').read_text()) for f in ('out', 'whole'))
    for key in ('val_accuracy', 'test_accuracy', 'lrs', 'weights_epoch', 'early_stopping',
                'epochs_completed'):
        assert got[key] == want[key], (key, got[key], want[key])
    assert np.array_equal(np.load(tmp_path / 'out' / 'history.npy'),
                          np.load(tmp_path / 'whole' / 'history.npy'))
    import torch
    a, b = (torch.load(tmp_path / f / 'model.pt', weights_only=True) for f in ('out', 'whole'))
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = cli_here('resume', tmp_path / 'ck', '--no-progress', cwd=tmp_path)  # now finished, with its results
    assert r.returncode == 0 and 'nothing to do' in r.stdout and 'writing them' not in r.stdout


def test_mixed_precision_channels_last_and_onecycle_from_the_command(tmp_path, data_root):
    """--amp bf16 --channels-last --scheduler onecycle: trains, checkpoints, resumes; extending a one-cycle
    plan is refused."""
    from cnn_course.checkpoint import read_checkpoint
    # bf16 forced: emulated, and several times slower, on a CPU without native bf16, hence few pictures
    args = ('train', '--amp', 'bf16', '--channels-last', '--scheduler', 'onecycle', '--lr', '0.003',
            '--limit-train', 300, '--limit-test', 100, '--data-root', data_root, '--no-progress')
    r = cli_here(*args, '--epochs', 2, '--out', tmp_path / 'whole', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'mixed precision: bf16 autocast' in r.stdout
    run, history = read_run(tmp_path / 'whole')
    assert run['config']['amp'] == 'bf16' and run['config']['channels_last'] and np.isfinite(history).all()
    assert run['val_accuracy'] == history[-1, 4]  # scored with the autocast it trained with
    # the one-cycle warm-up, seen epoch by epoch
    assert max(run['lrs']) <= 0.003 and run['lrs'][0] < run['lrs'][1]
    ck = tmp_path / 'ck'
    r = cli_here(*args, '--epochs', 1, '--checkpoint', ck, '--out', tmp_path / 'one', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli_here('resume', ck, '--epochs', 3, cwd=tmp_path)
    assert_usage_error(r, "--scheduler onecycle plans the learning rate for exactly the run's 1 epochs")
    assert read_checkpoint(ck / 'last.pt')['epoch'] == 1


def test_fast_recipe_from_the_command(tmp_path, data_root):
    """--recipe fast: the recipe's settings reach the run (run.json), an option given beside it wins, and it
    trains."""
    from cnn_course.runs import recipe
    args = ('--limit-train', 1200, '--limit-test', 300, '--data-root', data_root, '--no-progress', '--epochs',
            2)
    r = cli_here('train', '--recipe', 'fast', *args, '--out', tmp_path / 'fast', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run, history = read_run(tmp_path / 'fast')
    expected = recipe('fast', epochs=2, limit_train=1200, limit_test=300, data_root=str(data_root)).to_dict()
    assert run['config'] == expected
    assert ((expected['optimizer'], expected['scheduler'], expected['batch_size'])
            == ('adamw', 'onecycle', 128))
    assert 'mixed precision: ' in r.stdout and np.isfinite(history).all()
    assert run['val_accuracy'] > 0.5  # real Fashion-MNIST after 2 epochs on 1,000 images: chance is 0.1
    r = cli_here('train', '--recipe', 'fast', '--optimizer', 'sgd', '--label-smoothing', 0, *args, '--epochs',
                 1, '--out', tmp_path / 'sgd', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    config = read_run(tmp_path / 'sgd')[0]['config']
    assert (config['optimizer'], config['label_smoothing'], config['epochs'],
            config['weight_decay']) == ('sgd', 0.0, 1, 0.05)


def test_the_last_line_points_to_better_weights_in_best_pt(tmp_path, monkeypatch):
    """When the last epoch is not the best one, the summary says which weights it scored and where the best
    ones are."""
    from cnn_course.cli import _scored_weights, callback_results
    from cnn_course.runs import RunConfig, train_run
    monkeypatch.setenv('CNN_COURSE_QUICK', '1')
    run = train_run(RunConfig(model='fc', epochs=2, limit_train=300, limit_test=100,
                              data_root=str(tmp_path / 'data')),
                    checkpoint=tmp_path / 'ck', progress=False)
    info = callback_results(run.callbacks, run.history)
    ck = run.callbacks['checkpoint']
    said = _scored_weights(run, info, tmp_path / 'ck')
    assert said.startswith('scored: the weights of epoch 2 (the last)')
    assert ('best.pt' in said) == (ck.best_epoch != 2), (said, ck.best_epoch)
    ck.tracker.best_epoch = 1  # as when epoch 1 had the lower validation loss
    said = _scored_weights(run, info, tmp_path / 'ck')
    assert said == (f'scored: the weights of epoch 2 (the last); best.pt in {tmp_path / "ck"} holds epoch 1, '
                    f'the best by val_loss: `cnn-course evaluate {tmp_path / "ck"}` scores it')


def _ctrl_c_after_an_epoch(tmp_path, *args):
    """`cnn-course train ARGS` in a process group of its own, and Ctrl-C as a terminal sends it (SIGINT to
    the group)
    once an epoch has been printed (and, with --checkpoint, saved): its exit status and what it printed."""
    import signal, time
    env = {k: v for k, v in os.environ.items() if k != 'IN_TEST'}
    env.update(CNN_COURSE_QUICK='1', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    cmd = _cli('train', '--epochs', '50', '--limit-train', '2000', '--limit-test', '200', '--no-progress',
               '--data-root', str(tmp_path / 'data'), '--out', str(tmp_path / 'out'), *args, env=env)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:  # blocks until the epoch's line
            lines.append(line)
            if line.startswith('Epoch [1/50]'): break
        deadline = time.monotonic() + 60
        while ('--checkpoint' in args and not (tmp_path / 'ck' / 'last.pt').exists() and
               time.monotonic() < deadline):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, ''.join(lines) + out, err


@pytest.mark.long
def test_ctrl_c_names_the_saved_epoch_and_the_resume_command(tmp_path):
    from cnn_course.checkpoint import read_checkpoint
    rc, out, err = _ctrl_c_after_an_epoch(tmp_path, '--checkpoint', str(tmp_path / 'ck'))
    assert rc == 130 and err.strip().splitlines()[-1] == 'cnn-course: interrupted', err
    epoch = read_checkpoint(tmp_path / 'ck' / 'last.pt')['epoch']
    assert 1 <= epoch < 50
    assert out.strip().splitlines()[-1] == (f"Interrupted: {tmp_path / 'ck' / 'last.pt'} holds epoch {epoch} "
                                            f"of 50; continue with resume_run({str(tmp_path / 'ck')!r}), or "
                                            f"`cnn-course resume {tmp_path / 'ck'}` in a shell."), out
    assert 'Traceback' not in out + err


def test_ctrl_c_says_plainly_when_nothing_was_saved(tmp_path):
    rc, out, err = _ctrl_c_after_an_epoch(tmp_path)
    assert rc == 130 and 'Traceback' not in out + err, err
    said = ('cnn-course: interrupted; this run had no --checkpoint, so none of its epochs were saved (add '
            '--checkpoint DIR to keep them)')
    assert err.strip().splitlines()[-1] == said, err
