"""The ``convnet`` command: every bad-argument case gives ONE line and exit code 2 (never a
traceback), and train / evaluate / predict / summary do their jobs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import convnet
from convnet.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The default `convnet train` (digits_cnn on digits, 30 epochs), run once."""
    out = tmp_path_factory.mktemp("run")
    try:  # one BLAS thread: small GEMMs gain nothing from two, and a busy machine hurts
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        code = main(["train", "--out", str(out), "--quiet"])
    else:
        with threadpool_limits(1):
            code = main(["train", "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A model file as `convnet train` writes it, without the training (cheap)."""
    from convnet.models.digits import DigitsCNN

    path = tmp_path_factory.mktemp("untrained") / "model.safetensors"
    convnet.save(DigitsCNN(rng=0), path, metadata={
        "input_shape": [8, 8, 1], "class_names": [str(i) for i in range(10)],
        "dataset": "digits", "preprocess": {"range": [0, 1], "background": "dark"}})
    return path


@pytest.fixture
def bad_model_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return str(path)


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a PNG")
    return str(path)


BAD = [
    # (argv, words the one-line message must contain)
    ([], "missing command"),
    (["frobnicate"], "invalid choice"),
    (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--epochs", "ten"], "--epochs: expected a positive integer"),
    (["train", "--batch-size", "-8"], "--batch-size: expected a positive integer"),
    (["train", "--lr", "-0.1"], "--lr: expected a positive"),
    (["train", "--lr", "fast"], "--lr: expected a positive number"),
    (["train", "--lr", "nan"], "--lr: expected a positive finite number"),
    (["train", "--optimizer", "lbfgs"], "--optimizer: invalid choice"),
    (["train", "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["train", "--input-size", "0"], "--input-size: expected a positive integer"),
    (["train", "--val-split", "1.5"], "--val-split: expected a number in [0, 1)"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every: expected a positive integer"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["train", "extra"], "unrecognized arguments: extra"),
    (["train", "--epochs"], "--epochs: expected one argument"),
    (["train", "--model", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["train", "--model", "vgg16"], "--model vgg16 does not fit the dataset's 8x8x1 images"),
    (["train", "--model", "unet"], "a segmentation model"),
    (["train", "--model", "autoencoder"], "a reconstruction model"),
    (["train", "--data", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "--data", "npz:/no/such/file.npz"], "/no/such/file.npz"),
    (["train", "--data", "folder:/no/such/dir"], "/no/such/dir"),
    (["train", "--resume", "/no/such/checkpoint"], "checkpoint '/no/such/checkpoint' does not "
                                                   "exist"),
    (["train", "--resume", "{bad}"], "bad header"),
    (["evaluate"], "the following arguments are required: MODEL"),
    (["evaluate", "/no/such/model.safetensors"], "model file '/no/such/model.safetensors' "
                                                 "does not exist"),
    (["evaluate", "{bad}"], "bad header"),
    (["evaluate", "{dir}"], "is a directory"),
    (["evaluate", "{model}", "--split", "validation"], "--split: invalid choice"),
    (["evaluate", "{model}", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["evaluate", "{model}", "--data", "nosuch"], "unknown dataset 'nosuch'"),
    (["evaluate", "{model}", "--data", "npz:/no/such.npz"], "/no/such.npz"),
    (["predict"], "the following arguments are required: MODEL, IMAGE"),
    (["predict", "{model}"], "the following arguments are required: IMAGE"),
    (["predict", "/no/such/model.safetensors", "x.png"], "does not exist"),
    (["predict", "{model}", "/no/such/digit.png"], "image '/no/such/digit.png' does not exist"),
    (["predict", "{model}", "{notimage}"], "cannot read the image"),
    (["predict", "{bad}", "{notimage}"], "bad header"),
    (["predict", "{model}", "{notimage}", "--top-k", "0"], "--top-k: expected a positive"),
    (["predict", "{model}", "{notimage}", "--invert", "maybe"], "--invert: invalid choice"),
    (["summary"], "the following arguments are required: NAME"),
    (["summary", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["summary", "vgg16", "--input-shape", "big"], "--input-shape: input shape must look like"),
    (["summary", "vgg16", "--input-shape", "0x0x3"], "--input-shape: input shape must be "
                                                     "positive"),
    (["summary", "vgg16", "--input-shape", "8x8x1"], "vgg16 cannot take 8x8x1 input"),
    (["summary", "vgg16", "--num-classes", "0"], "--num-classes: expected a positive integer"),
    (["summary", "{bad}"], "bad header"),
    (["summary", "/no/such/model.safetensors"], "model file '/no/such/model.safetensors' "
                                                "does not exist"),
    (["summary", "{dir}"], "is a directory"),
]


@pytest.mark.parametrize("argv,expected", BAD, ids=[" ".join(a) or "<none>" for a, _ in BAD])
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, untrained, bad_model_file,
                                                not_an_image, argv, expected):
    subs = {"{bad}": bad_model_file, "{dir}": str(tmp_path), "{notimage}": not_an_image,
            "{model}": str(untrained)}
    argv = [subs.get(a, a) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("convnet"), lines[0]
    assert "Traceback" not in err and out == ""
    assert expected in lines[0], lines[0]


def test_resume_with_a_conflicting_flag(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--checkpoint-every", "20", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, "train", "--resume", str(out), "--lr", "0.5")
    assert code == 2 and "--lr 0.5 differs from the checkpoint's" in err
    assert len(err.strip().splitlines()) == 1
    # the finished run resumes to the same result
    code, text, _ = run_cli(capsys, "train", "--resume", str(out / "checkpoint.safetensors"),
                            "--quiet")
    assert code == 0 and "test accuracy" in text


def test_the_real_command_prints_no_traceback(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for argv in (["train", "--epochs", "x"], ["evaluate", str(tmp_path / "none.safetensors")]):
        res = subprocess.run([sys.executable, "-m", "convnet", *argv], capture_output=True,
                             text=True, env=env)
        assert res.returncode == 2
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "predict" in out and "summary" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert convnet.__version__ in capsys.readouterr().out


# ---- the commands doing their jobs ---------------------------------------------------
def test_default_train_reaches_98_percent_on_digits(trained):
    doc = json.load(open(trained / "metrics.json"))
    assert doc["test"]["accuracy"] >= 0.98
    assert doc["test"]["num_samples"] == 360  # the held-out split
    assert doc["config"]["model"] == "digits_cnn" and doc["config"]["data"] == "digits"
    assert len(doc["history"]["loss"]) == doc["config"]["epochs"]
    for name in ("model.safetensors", "metrics.json", "curves.png", "steps.csv"):
        assert (trained / name).stat().st_size > 0, name
    assert (trained / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = convnet.io.read_model_metadata(trained / "model.safetensors")
    assert meta["input_shape"] == [8, 8, 1] and meta["class_names"][3] == "3"


def test_train_prints_the_test_accuracy_and_writes_out(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--epochs", "1", "--out", str(tmp_path / "o"),
                             "--seed", "3", "--optimizer", "SGD", "--batch-size", "64",
                             "--val-split", "0.1")
    assert code == 0, err
    assert out.startswith("test accuracy: ") and "digits_cnn on digits, 1 epoch," in out
    assert "wrote" in out and "model.safetensors" in out
    doc = json.load(open(tmp_path / "o" / "metrics.json"))
    assert "val_accuracy" in doc["history"] and doc["config"]["optimizer"] == "sgd"


def test_train_default_out_is_a_timestamped_run_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "train", "--epochs", "1", "--quiet")
    assert code == 0
    runs = os.listdir(tmp_path / "runs")
    assert len(runs) == 1 and runs[0][:8].isdigit()
    assert (tmp_path / "runs" / runs[0] / "model.safetensors").exists()


def test_train_another_zoo_model(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--model", "lenet5", "--epochs", "1",
                             "--out", str(tmp_path), "--quiet", "--no-augment")
    assert code == 0, err
    assert "lenet5 on digits" in out


def test_evaluate_prints_metrics_and_confusion_matrix(capsys, trained):
    code, out, err = run_cli(capsys, "evaluate", str(trained / "model.safetensors"),
                             "--data", "digits")
    assert code == 0, err
    assert "accuracy:" in out and "top5_accuracy" in out and "confusion matrix" in out
    rows = [ln for ln in out.splitlines() if ln.strip()[:1].isdigit()][-10:]
    counts = np.array([[int(v) for v in ln.split()[1:]] for ln in rows])
    assert counts.shape == (10, 10) and counts.sum() == 360
    code, out, _ = run_cli(capsys, "evaluate", str(trained / "model.safetensors"), "--json")
    doc = json.loads(out)
    assert doc["num_samples"] == 360 and len(doc["confusion_matrix"]) == 10
    assert np.trace(np.array(doc["confusion_matrix"])) == round(doc["accuracy"] * 360)


def _test_digits():
    from convnet.data import Digits

    test = Digits(train=False)
    return test.images[..., 0], test.labels


def test_predict_a_png_from_the_test_split_prints_that_digit_first(capsys, tmp_path, trained):
    from PIL import Image

    images, labels = _test_digits()
    paths, truth = [], []
    for digit in range(10):
        i = int(np.flatnonzero(labels == digit)[0])  # the first test image of each digit
        path = tmp_path / f"digit{digit}.png"
        Image.fromarray(np.round(images[i] * 255).astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
        truth.append(digit)
    code, out, err = run_cli(capsys, "predict", str(trained / "model.safetensors"), *paths)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 10
    for line, path, digit in zip(lines, paths, truth):
        assert line.startswith(f"{path}: {digit} ("), line
        assert line.count("%") == 3  # top-3 with probabilities


def test_predict_resizes_and_inverts_a_drawing(capsys, tmp_path, trained):
    from PIL import Image

    images, labels = _test_digits()
    i = int(np.flatnonzero(labels == 7)[0])
    big = Image.fromarray(np.round((1 - images[i]) * 255).astype(np.uint8), mode="L")
    big = big.resize((96, 96), Image.Resampling.NEAREST).convert("RGB")  # black on white
    path = tmp_path / "seven.jpg"
    big.save(path, quality=95)
    code, out, _ = run_cli(capsys, "predict", str(trained / "model.safetensors"), str(path),
                           "--top-k", "1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc[0]["top"][0]["class"] == "7" and len(doc[0]["top"]) == 1


def test_summary_table_json_and_tiling(capsys, untrained):
    code, out, _ = run_cli(capsys, "summary", "vgg16", "--input-shape", "224x224x3")
    assert code == 0 and "Total params: 138,357,544" in out
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--json")
    doc = json.loads(out)
    assert doc["totals"]["params"] == 61706 and doc["input_shape"] == [32, 32, 1]
    code, out, _ = run_cli(capsys, "summary", str(untrained))
    assert code == 0 and "DigitsCNN" in out
    code, out, err = run_cli(capsys, "summary", "alexnet", "--check-tiling")
    assert code == 1 and "NO" in out and "strides are incorrect" in err
    code, out, _ = run_cli(capsys, "summary", "digits_cnn", "--input-shape", "8x8x1",
                           "--check-tiling")
    assert code == 0


def test_missing_optional_dependencies_get_a_clear_message(capsys, tmp_path, untrained,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    code, out, err = run_cli(capsys, "train", "--epochs", "1", "--out", str(tmp_path / "o"),
                             "--quiet")
    assert code == 0 and "curves.png skipped: plots need matplotlib" in err
    assert not (tmp_path / "o" / "curves.png").exists()
    monkeypatch.setitem(sys.modules, "PIL", None)
    code, out, err = run_cli(capsys, "predict", str(untrained), __file__)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "reading images needs Pillow: pip install pillow" in err


def test_a_diverging_run_is_stopped_by_the_nan_guard(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--epochs", "2", "--optimizer", "sgd", "--lr",
                             "1e30", "--out", str(tmp_path), "--quiet")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "NaNGuard: non-finite" in lines[0]
    assert "(epoch 1, batch " in lines[0] and "layer '" in lines[0]
    doc = json.load(open(tmp_path / "metrics.json"))
    assert doc["stop_reason"] == lines[0].split("stopped: ", 1)[1]
    assert not (tmp_path / "model.safetensors").exists()


def _zoo_classifiers():
    from convnet.models import list_models, model_info

    return [n for n in list_models() if model_info(n).task == "classification"]


@pytest.mark.parametrize("name", _zoo_classifiers())
def test_every_zoo_classifier_is_accepted_or_refused_for_digits(name):
    """A model that fits 8x8x1 digits builds with 10 outputs; one that does not gets a
    one-line reason (never a crash halfway through training)."""
    from convnet.models import get_model
    from convnet.train.runner import build_model

    try:
        get_model(name, num_classes=10, in_channels=1, input_size=8, init=False)
        fits = True
    except ValueError:
        fits = False
    if fits:
        model = build_model(name, (8, 8, 1), 10, rng=0, init=False)
        assert model.output_shape((8, 8, 1)) == (10,)
    else:
        with pytest.raises(ValueError, match=f"--model {name} does not fit the dataset's "
                                             f"8x8x1 images: .*smallest it accepts") as info:
            build_model(name, (8, 8, 1), 10, rng=0)
        assert "\n" not in str(info.value)
    assert fits == (not name.startswith(("vgg", "alexnet")))
