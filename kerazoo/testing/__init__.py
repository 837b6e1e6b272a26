"""The shared test harness that every kerazoo layer test calls, and trained-like
batch-norm statistics for tests and benchmarks of untrained models."""

from kerazoo.testing.layer_test import check_build
from kerazoo.testing.layer_test import check_config_round_trip
from kerazoo.testing.layer_test import check_fit_step
from kerazoo.testing.layer_test import check_keras_save_load
from kerazoo.testing.layer_test import check_mixed_precision
from kerazoo.testing.layer_test import check_output_shapes
from kerazoo.testing.layer_test import check_saved_model_export
from kerazoo.testing.layer_test import run_layer_test
from kerazoo.testing.statistics import perturb_keras_weights
from kerazoo.testing.statistics import randomize_batch_norms

__all__ = [
    "check_build",
    "check_config_round_trip",
    "check_fit_step",
    "check_keras_save_load",
    "check_mixed_precision",
    "check_output_shapes",
    "check_saved_model_export",
    "perturb_keras_weights",
    "randomize_batch_norms",
    "run_layer_test",
]
