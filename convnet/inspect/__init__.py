"""convnet.inspect: ``summary`` -- shapes, parameters, MACs, memory and receptive fields,
computed from each layer's ``output_shape`` without running the model."""

from .report import LayerRow, Summary, TilingError, format_bytes, format_count, format_shape
from .summary import parse_shape, summary

__all__ = ["summary", "parse_shape", "Summary", "LayerRow", "TilingError", "format_shape",
           "format_count", "format_bytes"]
