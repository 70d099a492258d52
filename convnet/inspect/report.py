"""The summary's result: rows, totals, a readable table and a JSON-able dict."""

from __future__ import annotations

from dataclasses import dataclass, field

from .receptive import tidy

__all__ = ["LayerRow", "Summary", "TilingError", "format_shape", "format_count",
           "format_bytes"]


def format_shape(shape) -> str:
    """(224, 224, 64) -> '224x224x64', the seeds' H x W x C."""
    return "x".join(str(int(v)) for v in shape)


def format_count(n: float) -> str:
    """15_470_264_320 -> '15.47 G' (decimal units, for MACs)."""
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)}"


def format_bytes(n: float) -> str:
    n = float(n)
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _axes(values) -> str:
    if values is None or any(v is None for v in values):
        return "-"
    shown = [f"{tidy(v):g}" for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


@dataclass
class LayerRow:
    """One layer (or merge) of a summary; figures are for the summary's batch size.

    ``rf`` holds one (size, jump, start) triple per spatial axis, or None where the
    receptive field cannot be said; ``tiles`` is None unless tiling was checked.
    """

    name: str
    type: str
    output_shape: tuple
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    activation_bytes: int = 0
    rf: tuple | None = None
    tiles: bool | None = None
    note: str = ""

    @property
    def trainable(self) -> str:
        if self.params == 0:
            return "-"
        if self.trainable_params == self.params:
            return "yes"
        return "no" if self.trainable_params == 0 else "partial"

    @property
    def receptive_field(self) -> tuple | None:
        return None if self.rf is None else tuple(tidy(r) for r, _, _ in self.rf)

    @property
    def jump(self) -> tuple | None:
        return None if self.rf is None else tuple(tidy(j) for _, j, _ in self.rf)

    @property
    def start(self) -> tuple | None:
        return None if self.rf is None else tuple(tidy(s) for _, _, s in self.rf)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": self.type, "output_shape": list(self.output_shape),
            "params": int(self.params), "trainable_params": int(self.trainable_params),
            "macs": int(self.macs), "activation_bytes": int(self.activation_bytes),
            "receptive_field": _listed(self.receptive_field), "jump": _listed(self.jump),
            "start": _listed(self.start), "tiles": self.tiles, "note": self.note,
        }


def _listed(values):
    return None if values is None else list(values)


@dataclass
class Summary:
    model: str
    input_shape: tuple
    batch_size: int
    dtype: str
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    check_tiling: bool = False

    # ---- figures ----------------------------------------------------------
    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def input_bytes(self) -> int:
        return self.rows[0].activation_bytes if self.rows else 0

    @property
    def activation_bytes(self) -> int:
        """Every layer output of one forward pass (the input not included)."""
        return sum(r.activation_bytes for r in self.rows[1:])

    @property
    def output_shape(self) -> tuple:
        return self.rows[-1].output_shape

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"summary: no layer named {name!r}; layers are "
                       f"{[r.name for r in self.rows][:12]}...")

    def tiling_failures(self) -> list:
        return [r for r in self.rows if r.tiles is False]

    # ---- output -----------------------------------------------------------
    def totals(self) -> dict:
        return {
            "params": int(self.total_params), "trainable_params": int(self.trainable_params),
            "non_trainable_params": int(self.non_trainable_params),
            "macs": int(self.total_macs), "param_bytes": int(self.param_bytes),
            "buffer_bytes": int(self.buffer_bytes), "input_bytes": int(self.input_bytes),
            "activation_bytes": int(self.activation_bytes),
        }

    def to_dict(self) -> dict:
        """Plain JSON types only: ``json.dumps(s.to_dict())`` works."""
        return {
            "model": self.model, "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape), "batch_size": self.batch_size,
            "dtype": self.dtype, "layers": [r.to_dict() for r in self.rows],
            "totals": self.totals(),
        }

    def to_text(self) -> str:
        head = ["Layer (type)", "Output shape", "Params", "Train", "MACs", "Activations",
                "RF", "Jump", "Start"]
        if self.check_tiling:
            head.append("Tiles")
        body = []
        for r in self.rows:
            cells = [f"{r.name} ({r.type})", format_shape(r.output_shape), f"{r.params:,}",
                     r.trainable, format_count(r.macs) if r.macs else "0",
                     format_bytes(r.activation_bytes), _axes(r.receptive_field),
                     _axes(r.jump), _axes(r.start)]
            if self.check_tiling:
                cells.append({True: "yes", False: "NO", None: "-"}[r.tiles])
            body.append(cells)
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]

        def line(cells):
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join([first, *rest]).rstrip()

        rule = "=" * len(line(head))
        batch = f", batch {self.batch_size}" if self.batch_size != 1 else ""
        out = [f'Model: "{self.model}"  input {format_shape(self.input_shape)}'
               f"{batch} ({self.dtype})", rule, line(head), rule]
        out += [line(c) for c in body]
        out.append(rule)
        t = self.totals()
        out += [
            f"Total params: {t['params']:,} ({format_bytes(self.param_bytes)})",
            f"Trainable params: {t['trainable_params']:,}",
            f"Non-trainable params: {t['non_trainable_params']:,}",
            f"Buffers: {format_bytes(self.buffer_bytes)}",
            f"Total MACs: {format_count(t['macs'])} ({t['macs']:,})",
            f"Parameter memory: {format_bytes(self.param_bytes + self.buffer_bytes)}",
            f"Activation memory (forward outputs): {format_bytes(t['activation_bytes'])}",
            f"Input: {format_bytes(t['input_bytes'])}",
        ]
        for r in self.tiling_failures():
            out.append(f"Tiling: {r.name} ({r.type}): {r.note}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()


class TilingError(ValueError):
    """A layer's windows do not tile its input; ``.summary`` holds the full report."""

    def __init__(self, summary: Summary):
        self.summary = summary
        self.layers = [r.name for r in summary.tiling_failures()]
        detail = "; ".join(f"{r.name} ({r.type}): {r.note}" for r in summary.tiling_failures())
        super().__init__(f"summary: the strides are incorrect at {len(self.layers)} "
                         f"layer(s): {detail}")
