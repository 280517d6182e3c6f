"""The names the course promises: every name in the modules' `__all__` lists of 2026-12-07, importable from
the module it was in then, and the README's library block. A name that moves to another module is re-exported
from its old one, so students' `from cnn_course.train import fit` and every API page's name keep working
(issue 43 moves
them)."""
import importlib, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module -> its public names on 2026-12-07 (a frozen list: adding names is fine, losing one fails)
PROMISED = {
    'core': '''
    DiskFullError NotWritableError atomic_write ensure_writable get_device is_quick live_output
    plain_doc quick remove_stale_temps rng_state run_kind set_rng_state torch_seed''',
    'data': '''
    BLANK_CONTRAST BatchAugment CIFAR10_CLASSES CLASS_NAMES ColourFashion DATASETS DATA_ROOT
    DEBIAN_FASHION_MNIST DamagedDataError DatasetNotFoundError DeviceLoader FASHION_MNIST_CLASSES
    IMAGE_SHAPES ImageError LoadedImage MNIST_CLASSES STAND_IN SyntheticCIFAR10 WORKING_SIDE
    cifar10_or_stand_in colour_canvases dataset_classes dataset_or_stand_in decompress_idx
    find_normalize load_dataset load_image make_transform on_disk shifted train_val_split tta_views
    write_colour_fashion write_synthetic_cifar10 write_synthetic_idx''',
    'models': '''
    CNN CifarCNN FashionCNN FastDropout MODELS MnistCNN ModelSpec Net ResBlock ResNet conv_bn
    conv_output_size with_torch_dropout''',
    'distributed': '''
    DEFAULT_TIMEOUT_S ProcessGroupError all_reduce_sum broadcast_buffers dist_info distributed
    init_distributed is_main_process leave_distributed lost_contact print_main wrap_model''',
    'train': '''
    AMP_CHOICES Callback EarlyStopping FitRun HISTORY_COLUMNS LRFind LRRecorder Monitor TB_TAGS
    TensorBoardLogger check_history check_model_fits check_predictions confusion_matrix current_lr
    eval_loss eval_mode evaluate fit format_epoch lr_find per_class_accuracy predict predict_images
    resolve_amp to_device''',
    'hooks': '''
    ActivationStats Hooks NoConvolutionError grad_cam last_conv saliency''',
    'viz': '''
    CourseFigure KOREAN_FONTS LABELS LivePlot PAIR_LEGEND compare_histories denormalize evaluate_history
    explain_figure for_display label model_graph model_summary plot_activation_hists
    plot_activation_stats plot_confusion_matrix plot_history plot_lr_find set_plot_style
    show_feature_maps show_filters show_heatmaps show_image show_images_labels show_misclassified
    show_rgb_channels''',
    'checkpoint': '''
    Checkpoint CheckpointError DamagedCheckpointError FORMAT FORMAT_VERSION ModelMismatchError
    NotACheckpointError checkpoint_state load_checkpoint model_identity read_checkpoint resume
    save_checkpoint''',
    'runs': '''
    ConfigError DEFAULT_MODELS DEVICES MONITORS OPTIMIZERS RECIPES Run RunConfig SCHEDULERS SPLITS
    TestSetWarning VAL_FRACTIONS build_model check_config evaluate_run finished_run load_run_model
    make_callbacks make_loaders make_optimizer make_run make_scheduler predict_run recipe resolve_device
    resume_run run_device saved_config score_run train_run''',
    'cli': '''
    AMP BATCH_NORM_MODELS CLIError CLI_RECORD COMMANDS DATASETS DEFAULT_MODELS DEVICES EXPLAINED_FILE
    IMAGE_SHAPES LAUNCH_OPTIONS MODEL_HELP MODEL_INPUTS OPTIMIZERS RECIPES RECIPE_HELP RESULT_FILES
    RUN_FOLDER_FILES SCHEDULERS TEST_SET_WARNING VIEW_FILES build_parser callback_results check_args
    config_from_args evaluate_command history_csv main predict_command resume_command save_results
    save_views train_command''',
}


@pytest.mark.parametrize('module', sorted(PROMISED))
def test_every_promised_name_imports_from_its_module(module):
    mod = importlib.import_module(f'cnn_course.{module}')
    missing = [n for n in PROMISED[module].split() if not hasattr(mod, n)]
    assert not missing, f'cnn_course.{module} no longer has {missing}: re-export them where they moved'


def test_the_readmes_library_block_runs():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    blocks = [b for b in re.findall(r'```python\n(.*?)```', readme, re.S) if 'import' in b]
    assert blocks, 'README.md has no python block of imports'
    for block in blocks: exec(compile(block, 'README.md', 'exec'), {})
