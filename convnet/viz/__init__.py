"""Plots (matplotlib, Agg backend, imported lazily): training curves, confusion matrices,
conv filters and activation maps."""

from .curves import plot_confusion_matrix, plot_curves
from .maps import capture_activation, plot_activations, plot_filters

__all__ = ["plot_curves", "plot_confusion_matrix", "plot_filters", "plot_activations",
           "capture_activation"]
