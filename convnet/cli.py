"""The ``convnet`` command: argument parsing, then calls into the library.

    convnet train [--model digits_cnn] [--data digits] [--epochs N] ...
    convnet evaluate MODEL --data digits
    convnet predict MODEL IMAGE [IMAGE ...]
    convnet summary NAME --input-shape 224x224x3 [--json] [--check-tiling]

Any bad argument, missing file or malformed file prints ONE line naming the problem on
stderr and exits with code 2 -- never a traceback (argparse's own usage errors
included).  Other failures exit with 1 (NaN guard, tiling check) or 130 (Ctrl-C).
Heavy modules (tqdm, matplotlib, safetensors, Pillow, scikit-learn) are imported inside
the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

__all__ = ["main", "build_parser", "CLIError"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CLIError(Exception):
    """A user-facing problem: printed as one line, exit code 2 (or ``code``)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, not usage + traceback."""

    def error(self, message):  # noqa: D401 - argparse's hook
        raise CLIError(f"{self.prog}: error: {message}")


# ---- argument types --------------------------------------------------------------
def _number(cast, accept, expected: str, bad_range: str | None = None):
    """An argparse type: ``cast`` the text, then require ``accept(value)``."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {bad_range or expected}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number",
                          "a positive finite number")
_fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _shape(text: str) -> tuple:
    from .inspect.summary import parse_shape

    try:
        return parse_shape(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


# ---- the parser ------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="convnet", description="Train, evaluate, inspect and use CNNs "
                "written from scratch on NumPy.")
    p.add_argument("--version", action="version", version=f"convnet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (default: a small CNN on 8x8 digits)",
                       description="Train a zoo model on a dataset; write the model file, "
                       "metrics.json and curves.png into --out, and print the test accuracy.")
    t.add_argument("--model", default=None, help="zoo model name (default: digits_cnn)")
    t.add_argument("--data", default=None, help="digits (default), mnist, fashion-mnist, "
                   "cifar10, folder:PATH or npz:PATH")
    t.add_argument("--epochs", type=_positive_int, default=None, help="default 30")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="default 32")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 3e-3 for adam on digits_cnn, 0.05 for sgd, "
                   "else 1e-3)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, type=str.lower, default=None,
                   help="default adam")
    t.add_argument("--seed", type=_seed, default=None, help="default 0")
    t.add_argument("--input-size", type=_positive_int, default=None,
                   help="resize the images to NxN (for models that need a larger input)")
    t.add_argument("--val-split", type=_fraction, default=None,
                   help="hold out this fraction of the training split for validation")
    t.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no random-crop augmentation")
    t.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="continue the run saved in CHECKPOINT (a checkpoint file or a run "
                   "directory); the run's settings come from the checkpoint")
    t.add_argument("--out", default=None, help="output directory (default ./runs/<timestamp>, "
                   "or the checkpoint's directory with --resume)")
    t.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                   help="write a resumable checkpoint every N optimizer steps (and at the "
                   "end of every epoch)")
    t.add_argument("--quiet", action="store_true", help="no progress bar; print only the "
                   "result")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a model file on a dataset split")
    e.add_argument("model_file", metavar="MODEL", help="a model file (.safetensors)")
    e.add_argument("--data", default=None, help="dataset (default: the one it was trained on)")
    e.add_argument("--split", choices=("test", "train"), default="test")
    e.add_argument("--batch-size", type=_positive_int, default=256)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="classify image files with a model file")
    r.add_argument("model_file", metavar="MODEL", help="a model file (.safetensors)")
    r.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG/... image files")
    r.add_argument("--top-k", type=_positive_int, default=3, help="classes to show (3)")
    r.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert grey levels (auto: for dark-on-light images when the model "
                   "was trained on light-on-dark digits)")
    r.add_argument("--input-shape", type=_shape, default=None, metavar="HxWxC",
                   help="the model's input (default: recorded in the model file)")
    r.add_argument("--json", action="store_true", help="print the predictions as JSON")
    r.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="layer table: shapes, parameters, MACs, memory, "
                       "receptive fields")
    s.add_argument("name", metavar="NAME", help="zoo model name, or a model file")
    s.add_argument("--input-shape", type=_shape, default=None, metavar="HxWxC",
                   help="per-sample input, e.g. 224x224x3 (default: the model's own)")
    s.add_argument("--num-classes", type=_positive_int, default=None)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--check-tiling", action="store_true",
                   help="check that every conv/pool window tiles its input exactly")
    s.set_defaults(func=cmd_summary)

    x = sub.add_parser("export", help="export a model file to ONNX")
    x.add_argument("model_file", metavar="MODEL", help="a convnet model file (.safetensors)")
    x.add_argument("out", metavar="OUT", help="where to write the .onnx file")
    x.add_argument("--input-shape", type=_shape, default=None, metavar="HxWxC",
                   help="per-sample input (default: recorded in the model file)")
    x.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default 17)")
    x.set_defaults(func=cmd_export)
    return p


# ---- helpers ---------------------------------------------------------------------
def _existing_file(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise CLIError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory, expected a file")
    return path


def _load_model(path: str):
    from .io import load

    _existing_file(path, "model file")
    return load(path, with_metadata=True)


def _out_dir(args) -> str:
    if args.out:
        return args.out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", stamp)
    out, i = base, 1
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


_TRAIN_FLAGS = ("model", "data", "epochs", "batch_size", "lr", "optimizer", "seed",
                "input_size", "val_split", "augment")


def _resume_config(args):
    from .io import load_checkpoint
    from .train.runner import CHECKPOINT_NAME, RunConfig

    path = args.resume
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    _existing_file(path, "checkpoint")
    state = load_checkpoint(path)
    saved = state.get("config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise CLIError(f"{path}: the checkpoint holds no run configuration (was it written by "
                       f"convnet train?)")
    try:
        cfg = RunConfig.from_dict(saved)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{path}: bad run configuration in the checkpoint: {exc}") from None
    for flag in _TRAIN_FLAGS:
        given = getattr(args, flag)
        if given is not None and given != getattr(cfg, flag):
            raise CLIError(f"--resume: --{flag.replace('_', '-')} {given} differs from the "
                           f"checkpoint's {getattr(cfg, flag)}; a resumed run keeps its "
                           f"settings")
    if args.checkpoint_every is not None:
        cfg.checkpoint_every = args.checkpoint_every
    out = args.out or os.path.dirname(os.path.abspath(path))
    return cfg, state, out


# ---- commands --------------------------------------------------------------------
def cmd_train(args) -> int:
    from .backend import retain_freed_memory
    from .train.runner import RunConfig, run_training

    retain_freed_memory()   # this process is ours: reuse freed activations (see backend)

    if args.resume:
        cfg, state, out = _resume_config(args)
    else:
        given = {k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}
        cfg = RunConfig(**given, checkpoint_every=args.checkpoint_every)
        state, out = None, _out_dir(args)
    # Overflow in a diverging run is reported once, by the NaN guard, not as a stream of
    # NumPy RuntimeWarnings (which worker threads would not silence with np.errstate).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run_training(cfg, out, resume=state, verbose=0 if args.quiet else 1,
                              log=lambda m: print(m, file=sys.stderr))
    if result["test"] is None:
        print(f"convnet train: stopped: {result['stop_reason']}", file=sys.stderr)
        return EXIT_FAILURE
    test = result["test"]
    n = test["num_samples"]
    correct = int(round(test["accuracy"] * n))
    epochs = len(result["history"])
    print(f"test accuracy: {test['accuracy']:.4f} ({correct}/{n}) -- {cfg.model} on "
          f"{cfg.data}, {epochs} epoch{'' if epochs == 1 else 's'}, "
          f"{result['train_time']:.1f} s of training")
    if not args.quiet:
        files = ", ".join(os.path.basename(p) for p in result["paths"].values())
        print(f"wrote {out}{os.sep} ({files})")
    return 0


def _dataset_for_model(meta: dict, data_arg, split: str):
    from .train.runner import RunConfig, load_split

    name = data_arg or meta.get("dataset")
    if not name:
        raise CLIError("--data is required: the model file does not say which dataset it "
                       "was trained on")
    shape = meta.get("input_shape")
    ds = load_split(RunConfig(data=name), split == "train")
    if shape and tuple(ds.input_shape) != tuple(shape):
        if len(shape) == 3 and ds.input_shape[-1] == shape[-1]:
            ds = load_split(RunConfig(data=name), split == "train", size=tuple(shape[:2]))
        else:
            raise CLIError(f"the model takes {'x'.join(map(str, shape))} inputs but dataset "
                           f"{name!r} has {'x'.join(map(str, ds.input_shape))} images")
    return ds


def cmd_evaluate(args) -> int:
    from .train import evaluate

    model, meta = _load_model(args.model_file)
    ds = _dataset_for_model(meta, args.data, args.split)
    out = model.output_shape(tuple(ds.input_shape))
    if tuple(out) != (ds.num_classes,):
        raise CLIError(f"the model outputs {tuple(out)} scores but dataset has "
                       f"{ds.num_classes} classes")
    res = evaluate(model, ds, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(res.to_json(), allow_nan=False, default=str))
    else:
        print(f"{args.model_file} on {args.data or meta.get('dataset')} ({args.split} split)")
        print(res.to_text(getattr(ds, "classes", None)))
    return 0


def cmd_predict(args) -> int:
    from .io.images import predict_files

    model, meta = _load_model(args.model_file)
    for path in args.images:
        _existing_file(path, "image")
    if args.input_shape is None and not meta.get("input_shape"):
        raise CLIError("--input-shape is required: the model file does not record its input "
                       "shape")
    results = predict_files(model, args.images, meta, top_k=args.top_k, invert=args.invert,
                            input_shape=args.input_shape)
    if args.json:
        print(json.dumps([{"image": p, "top": [{"class": c, "probability": pr}
                                               for c, pr in top]} for p, top in results]))
        return 0
    for path, top in results:
        print(f"{path}: " + "  ".join(f"{c} ({pr:.2%})" for c, pr in top))
    return 0


def cmd_summary(args) -> int:
    from .inspect import summary

    shape = args.input_shape
    looks_like_path = os.sep in args.name or args.name.endswith(".safetensors")
    if looks_like_path or os.path.exists(args.name):
        _existing_file(args.name, "model file")
        model, meta = _load_model(args.name)
        if shape is None:
            if not meta.get("input_shape"):
                raise CLIError("--input-shape is required: the model file does not record "
                               "its input shape")
            shape = tuple(meta["input_shape"])
    else:
        from .models import default_input_shape, get_model

        shape = shape or default_input_shape(args.name)
        size = shape[:-1] if len(shape) > 2 else shape[0]
        model = get_model(args.name, num_classes=args.num_classes, in_channels=shape[-1],
                          input_size=size, init=False)
    s = summary(model, shape, check_tiling="report" if args.check_tiling else False)
    print(json.dumps(s.to_dict()) if args.json else s.to_text())
    if args.check_tiling and s.tiling_failures():
        bad = ", ".join(r.name for r in s.tiling_failures())
        print(f"convnet summary: the strides are incorrect (windows do not tile the input) "
              f"at: {bad}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def cmd_export(args) -> int:
    from .io.onnx import export_main

    _existing_file(args.model_file, "model file")
    return export_main(args.model_file, args.out, args.input_shape, args.opset)


# ---- entry point -----------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Run the command line; returns the exit code (``__main__`` raises SystemExit)."""
    parser = build_parser()
    prog = "convnet"
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise CLIError("convnet: error: missing command; expected one of train, evaluate, "
                           "predict, summary, export (see convnet --help)")
        prog = f"convnet {args.command}"
        return int(args.func(args) or 0)
    except CLIError as exc:
        msg = str(exc)
        print(_one_line(msg if msg.startswith("convnet") else f"{prog}: error: {msg}"),
              file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ImportError as exc:
        print(_one_line(f"{prog}: error: a required package is missing: {exc}"),
              file=sys.stderr)
        return EXIT_FAILURE
    except (OSError, ValueError, TypeError, KeyError) as exc:
        # Missing files, malformed model files / checkpoints / datasets (ModelFormatError
        # and the dataset errors are ValueErrors) and bad settings.
        if os.environ.get("CONVNET_DEBUG"):
            raise
        text = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0])
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        print(_one_line(f"{prog}: error: {text}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        if os.environ.get("CONVNET_DEBUG"):
            raise
        print(_one_line(f"{prog}: internal error: {type(exc).__name__}: {exc} (set "
                        f"CONVNET_DEBUG=1 for the traceback)"), file=sys.stderr)
        return EXIT_FAILURE
