"""The evaluation plots: real PNGs, the right plot for each task, deterministic bytes, headless and lazy."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from tests.fixtures.paths import REPO

from mlspec.ml import plots

CLASSES = ["setosa", "versicolor", "virginica"]
MATRIX = [[12, 1, 0], [0, 10, 2], [0, 1, 12]]
KERAS_HISTORY = {
    "loss": [1.2, 0.8, 0.5, 0.4, 0.35],
    "accuracy": [0.5, 0.7, 0.85, 0.9, 0.92],
    "val_loss": [1.3, 0.9, 0.7, 0.6, 0.58],
    "val_accuracy": [0.45, 0.65, 0.8, 0.86, 0.88],
}


def image(png: bytes):
    from PIL import Image

    assert png.startswith(plots.PNG_SIGNATURE)
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


def colours(png: bytes) -> int:
    return len(image(png).convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_confusion_matrix_is_a_png_with_a_cell_per_class_pair() -> None:
    png = plots.confusion_matrix_png(MATRIX, CLASSES)
    picture = image(png)
    assert picture.format == "PNG" and picture.width >= 400 and picture.height >= 400
    assert colours(png) > 50  # a drawn heat map with text, not an empty canvas
    bigger = image(plots.confusion_matrix_png(np.eye(10, dtype=int) * 5, [str(i) for i in range(10)]))
    assert bigger.width > picture.width  # cells grow with the classes


def test_plots_are_deterministic_bytes() -> None:
    # A retried evaluate writes the same bytes, so a retried store publishes the same checksums.
    assert plots.confusion_matrix_png(MATRIX, CLASSES) == plots.confusion_matrix_png(MATRIX, CLASSES)
    assert plots.training_curves_png(KERAS_HISTORY) == plots.training_curves_png(KERAS_HISTORY)
    y = np.linspace(0, 100, 50)
    assert plots.residuals_png(y, y + 3) == plots.residuals_png(y, y + 3)
    assert b"matplotlib" not in plots.confusion_matrix_png(MATRIX, CLASSES)  # no software metadata


def test_confusion_matrix_refuses_a_matrix_of_the_wrong_size() -> None:
    with pytest.raises(plots.PlotError, match="3 classes must be 3x3"):
        plots.confusion_matrix_png([[1, 2], [3, 4]], CLASSES)


def test_many_classes_are_drawn_without_cell_text() -> None:
    many = [f"class-{i}" for i in range(plots.MAX_ANNOTATED_CLASSES + 5)]
    png = plots.confusion_matrix_png(np.eye(len(many), dtype=int), many)
    assert image(png).width > 0


def test_residuals_show_the_histogram_and_predicted_against_true() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(150, 50, 120)
    png = plots.residuals_png(truth, (truth + rng.normal(0, 20, 120)).reshape(-1, 1))
    picture = image(png)
    assert picture.width > 1.8 * picture.height  # two panels side by side
    with pytest.raises(plots.PlotError, match="nothing to compare"):
        plots.residuals_png([1.0, 2.0], [1.0])
    with pytest.raises(plots.PlotError, match="no finite pair"):
        plots.residuals_png([np.nan], [1.0])


def test_training_curves_of_keras_put_losses_and_scores_in_two_panels() -> None:
    two = image(plots.training_curves_png(KERAS_HISTORY, step_name="epoch"))
    one = image(plots.training_curves_png({"loss": KERAS_HISTORY["loss"]}, step_name="stage"))
    assert two.width > 1.6 * one.width


def test_training_curves_tolerate_gaps_and_skip_empty_history() -> None:
    assert plots.training_curves_png({}) is None
    assert plots.training_curves_png({"loss": []}) is None
    assert plots.training_curves_png({"loss": [float("nan")]}) is None
    assert image(plots.training_curves_png({"loss": [1.0, float("nan"), 0.5, None]}))


def test_a_one_step_estimator_gets_bars_of_its_training_and_validation_scores() -> None:
    png = plots.training_curves_png({"accuracy": [1.0], "val_accuracy": [0.95]})
    assert image(png).width > 0
    assert png != plots.training_curves_png({"accuracy": [1.0, 1.0], "val_accuracy": [0.95, 0.95]})


def test_evaluation_plots_fit_the_task() -> None:
    classified = plots.evaluation_plots(
        "classification", [0, 1, 2], {}, {"confusion_matrix": MATRIX}, class_names=CLASSES, history=KERAS_HISTORY
    )
    assert sorted(classified) == ["confusion_matrix.png", "training_curves.png"]
    y = np.linspace(0, 10, 30)
    regressed = plots.evaluation_plots("regression", y, {"prediction": (y + 0.5).reshape(-1, 1)}, {}, history={})
    assert sorted(regressed) == ["residuals.png"]
    assert all(png.startswith(plots.PNG_SIGNATURE) for png in [*classified.values(), *regressed.values()])


def test_plots_are_drawn_headless_and_matplotlib_is_imported_only_when_drawing(tmp_path) -> None:
    code = (
        "import sys\n"
        "import mlspec.ml.plots as p\n"
        "assert 'matplotlib' not in sys.modules, 'imported at module level'\n"
        "png = p.confusion_matrix_png([[1, 0], [0, 1]], ['a', 'b'])\n"
        "assert png.startswith(p.PNG_SIGNATURE)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot (global figure state) was imported'\n"
        "import matplotlib\n"
        "print(matplotlib.get_backend())\n"
    )
    # No display and no backend setting: a worker's environment.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "plugins", env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
