"""`convnet export MODEL OUT`: a saved model file becomes an ONNX file that
onnxruntime runs with the same outputs."""

import numpy as np
import onnxruntime as ort

import convnet
from convnet import nn
from convnet.cli import main


def _model_file(tmp_path, with_shape=True):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding="same", rng=rng), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 4, 5, rng=rng))
    path = tmp_path / "m.safetensors"
    convnet.save(model, path, metadata={"input_shape": [8, 8, 1]} if with_shape else None)
    return model.eval(), path


def test_export_runs_in_onnxruntime(tmp_path, capsys):
    model, path = _model_file(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", str(path), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(1).standard_normal((3, 8, 8, 1)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with convnet.no_grad():
        want = model(convnet.Tensor(x)).data
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_export_needs_input_shape_when_file_has_none(tmp_path, capsys):
    _, path = _model_file(tmp_path, with_shape=False)
    assert main(["export", str(path), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "input shape" in err
    assert main(["export", str(path), str(tmp_path / "m.onnx"), "--input-shape", "8x8x1"]) == 0


def test_export_missing_file_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.safetensors"), str(tmp_path / "o.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert not (tmp_path / "o.onnx").exists()
