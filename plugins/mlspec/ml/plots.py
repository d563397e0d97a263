"""The evaluation plots every published version carries, as PNG bytes (headless matplotlib).

* ``confusion_matrix.png`` (classification): test counts, rows the true class, columns the predicted
  one, labelled with the data set's class names;
* ``residuals.png`` (regression): a histogram of the test residuals (true - predicted) beside
  predicted against true with the line of perfect predictions;
* ``training_curves.png``: train's per-step history (Keras: loss, accuracy and their ``val_*`` per
  epoch; scikit-learn: per-stage loss or per-iteration scores), losses and scores in separate panels;
  an estimator fitted in one step has one point per score, drawn as bars (train beside validation).

matplotlib is imported inside the functions (DAG parsing stays light) and only its Agg canvas is used:
no pyplot, no GUI backend, no global figure state, so it is safe in workers and threads. The PNGs are
deterministic (no software/date metadata), so a retried evaluate writes the very same bytes and a
retried store publishes the same checksums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

CONFUSION_MATRIX = "confusion_matrix.png"
RESIDUALS = "residuals.png"
TRAINING_CURVES = "training_curves.png"
PLOT_NAMES = (CONFUSION_MATRIX, RESIDUALS, TRAINING_CURVES)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

DPI = 100
# Above this many classes the cells are too small for their counts to be written into them.
MAX_ANNOTATED_CLASSES = 30
# Above this many classes the axes carry no class names (each is a text object to lay out and draw) ...
MAX_LABELLED_CLASSES = 60
# ... and above this many no heat map is drawn at all: the image of k x k cells is k² RGBA floats (10,000
# classes: 3.2 GB). evaluate publishes the version without the plot.
MAX_PLOTTED_CLASSES = 1_000
# Predicted-vs-true draws at most this many points (evenly spaced picks): a plot, not a data dump.
MAX_SCATTER_POINTS = 5000
_TRAIN_COLOR, _VAL_COLOR = "#1a73e8", "#e8710a"
_PALETTE = ("#1a73e8", "#e8710a", "#188038", "#9334e6", "#d93025", "#007b83", "#b06000", "#5f6368")


class PlotError(ValueError):
    """What was asked for cannot be drawn (wrong shapes, nothing to plot)."""


# -- the plots --------------------------------------------------------------------------------
def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str = "") -> bytes:
    """A heat map of the counts; rows are true classes, columns predicted ones, in class_names order."""
    k = len(class_names)
    if k > MAX_PLOTTED_CLASSES:
        raise PlotError(f"{k:,} classes are too many for a confusion matrix plot (at most {MAX_PLOTTED_CLASSES:,})")
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise PlotError(f"a confusion matrix of {k} classes must be {k}x{k}, not {list(counts.shape)}")
    names = [_short(str(name), 18) for name in class_names]
    side = min(max(4.8, 0.45 * k + 2.5), 14.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest", vmin=0, vmax=max(int(counts.max()), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= MAX_LABELLED_CLASSES:
        rotation = 45 if max((len(n) for n in names), default=0) > 3 else 0
        ax.set_xticks(range(k), labels=names, rotation=rotation, ha="right")
        ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = f"; accuracy {correct / total:.3f}" if total else ""
    ax.set_title(title or f"Confusion matrix ({total} test samples{accuracy})")
    if k <= MAX_ANNOTATED_CLASSES:
        threshold = counts.max() / 2 if counts.size else 0
        for row in range(k):
            for col in range(k):
                ax.text(
                    col, row, str(int(counts[row, col])), ha="center", va="center", fontsize=9 if k <= 12 else 7,
                    color="white" if counts[row, col] > threshold else "black",
                )
    return _png(fig)


def residuals_png(y_true: Any, y_pred: Any, *, title: str = "") -> bytes:
    """Residuals (true - predicted) as a histogram, beside predicted against true."""
    true = _column(y_true, "true values")
    pred = _column(y_pred, "predictions")
    if len(true) != len(pred) or not len(true):
        raise PlotError(f"{len(true)} true values and {len(pred)} predictions: nothing to compare")
    keep = np.isfinite(true) & np.isfinite(pred)
    true, pred = true[keep], pred[keep]
    if not len(true):
        raise PlotError("no finite pair of true value and prediction to plot")
    residuals = true - pred
    fig = _figure(11.0, 4.6)
    hist = fig.add_subplot(1, 2, 1)
    bins = min(30, max(5, int(math.sqrt(len(residuals)))))
    low, high = float(residuals.min()), float(residuals.max())
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):  # (nearly) one value: a bar around it
        low, high = low - 0.5, high + 0.5
    hist.hist(residuals, bins=bins, range=(low, high), color=_TRAIN_COLOR, edgecolor="white")
    hist.axvline(0.0, color="#202124", linewidth=1)
    hist.set_xlabel("residual (true - predicted)")
    hist.set_ylabel("test samples")
    hist.set_title(f"Residuals: mean {residuals.mean():.4g}, std {residuals.std():.4g}")
    scatter = fig.add_subplot(1, 2, 2)
    picks = _evenly(len(true), MAX_SCATTER_POINTS)
    scatter.scatter(true[picks], pred[picks], s=12, alpha=0.6, color=_TRAIN_COLOR, edgecolors="none")
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    scatter.plot([low, high], [low, high], color="#d93025", linewidth=1, label="predicted = true")
    scatter.set_xlabel("true value")
    scatter.set_ylabel("predicted value")
    scatter.set_title(title or f"Predicted vs true ({len(true)} test samples)")
    scatter.legend(loc="upper left", fontsize=8)
    return _png(fig)


def training_curves_png(history: Mapping[str, Sequence[float]], *, step_name: str = "step", title: str = "") -> bytes | None:
    """train's per-step curves: losses in one panel, scores in another; None when there is no curve.

    `history` maps a curve's name (loss, val_loss, accuracy, val_accuracy, train_score, ...) to one value
    per step. A validation curve (``val_<name>``) is drawn dashed in its training curve's panel. When every
    curve has a single point (an estimator fitted in one step) the values are drawn as bars instead.
    """
    curves = {str(name): [_finite(v) for v in values] for name, values in (history or {}).items() if values}
    curves = {name: values for name, values in curves.items() if any(v is not None for v in values)}
    if not curves:
        return None
    if all(len(values) == 1 for values in curves.values()):
        return _scores_png(curves, title=title)
    panels = [group for group in (_losses(curves), _scores(curves)) if group]
    fig = _figure(5.6 * len(panels) + 0.6, 4.4)
    for index, (heading, names) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), index)
        for color_index, base in enumerate(_bases(names)):
            color = _PALETTE[color_index % len(_PALETTE)]
            for name, style in ((base, "-"), (f"val_{base}", "--")):
                if name in names:
                    values = curves[name]
                    steps = range(1, len(values) + 1)
                    ys = [np.nan if v is None else v for v in values]
                    ax.plot(steps, ys, linestyle=style, color=color, label=name, marker="o" if len(values) <= 12 else None, markersize=3)
        ax.set_xlabel(step_name)
        ax.set_ylabel(heading)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or f"Training curves ({max(len(v) for v in curves.values())} {step_name}s)")
    return _png(fig)


def evaluation_plots(
    task: str,
    y_true: Any,
    outputs: Mapping[str, Any],
    results: Mapping[str, Any],
    *,
    class_names: Sequence[str] = (),
    history: Mapping[str, Sequence[float]] | None = None,
    step_name: str = "step",
) -> dict[str, bytes]:
    """Every plot that fits the task: file name -> PNG bytes.

    `results` is `metrics.compute_metrics`'s result (its "confusion_matrix" for classification),
    `outputs` the model's answers on the test split ("prediction" for regression), `history` train's
    per-step curves (omitted when empty).
    """
    plots: dict[str, bytes] = {}
    if task == "classification":
        plots[CONFUSION_MATRIX] = confusion_matrix_png(results["confusion_matrix"], class_names)
    else:
        plots[RESIDUALS] = residuals_png(y_true, outputs["prediction"])
    curves = training_curves_png(history or {}, step_name=step_name)
    if curves is not None:
        plots[TRAINING_CURVES] = curves
    return plots


# -- helpers ----------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    # No "Software" (matplotlib's version) nor date: the same plot is the same bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _scores_png(curves: Mapping[str, list[float | None]], *, title: str) -> bytes:
    names = list(curves)
    bases = _bases(names)
    fig = _figure(max(5.0, 1.6 * len(bases) + 2.5), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.38
    for offset, prefix, color, label in ((-width / 2, "", _TRAIN_COLOR, "training"), (width / 2, "val_", _VAL_COLOR, "validation")):
        xs, ys = [], []
        for index, base in enumerate(bases):
            value = curves.get(f"{prefix}{base}", [None])[0]
            if value is not None:
                xs.append(index + offset)
                ys.append(value)
        if xs:
            bars = ax.bar(xs, ys, width=width, color=color, label=label)
            ax.bar_label(bars, fmt="%.4g", fontsize=8, padding=2)
    ax.set_xticks(range(len(bases)), labels=bases)
    ax.set_xlim(-0.9, len(bases) - 0.1)
    ax.set_ylabel("score after fitting")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    ax.set_title(title or "Training scores (fitted in one step: no per-step curve)")
    return _png(fig)


def _losses(curves: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    names = [n for n in curves if "loss" in n]
    return ("loss", names) if names else None


def _scores(curves: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    names = [n for n in curves if "loss" not in n]
    return ("score", names) if names else None


def _bases(names: Sequence[str]) -> list[str]:
    """Curve names without their val_ prefix, in first-seen order (train and validation share a colour)."""
    seen: list[str] = []
    for name in names:
        base = name.removeprefix("val_")
        if base not in seen:
            seen.append(base)
    return seen


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(values: Any, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise PlotError(f"{what} have shape {list(array.shape)}; expected one number per sample")
    return array


def _evenly(count: int, most: int) -> np.ndarray:
    if count <= most:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, most).round().astype(np.int64))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
