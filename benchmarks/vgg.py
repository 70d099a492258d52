"""W3: VGG-16 inference latency at batch 1, 224x224x3 -- convnet vs torch vs onnxruntime.

convnet runs the zoo's ``convnet.models.vgg16`` (or the same network built here from
convnet layers if the zoo is missing); torch runs an equal ``torch.nn`` network with
convnet's weights copied in; onnxruntime runs torch's model exported with
``torch.onnx.export`` (or, if that fails, an equal ONNX graph built with the ``onnx``
package from the same weights).  All three use 2 threads and are timed alternately.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np

from .common import Row, Settings, na_row
from .models import (
    build_convnet,
    build_torch,
    check_same,
    copy_weights,
    nchw,
    spec_conv_flops,
    vgg16_spec,
)
from .training import interleaved


def _convnet_vgg16(spec, rng, smoke):
    """The zoo's VGG-16 when it is there (full size only), else one built from ``spec``."""
    if not smoke:
        try:
            from convnet.models import vgg16
            return vgg16(rng=rng), True
        except ImportError:
            pass
    return build_convnet(spec, rng), False


def _torch_twin(spec, zoo):
    import torch
    th = build_torch(spec)
    if zoo:  # the zoo's net has torchvision's AdaptiveAvgPool2d(7) before flattening
        layers = list(th)
        k = next(i for i, m in enumerate(layers) if isinstance(m, torch.nn.Flatten))
        layers.insert(k, torch.nn.AdaptiveAvgPool2d((7, 7)))
        th = torch.nn.Sequential(*layers)
    return th.eval()


def _onnx_session(th_model, x_nchw, path, export=True):
    """An onnxruntime session for the torch model: ``torch.onnx.export`` (about 20 s for
    VGG-16's 553 MB), or -- in quick mode, or if the export fails -- the same graph
    built directly with the ``onnx`` package from the same weights (a few seconds)."""
    import onnxruntime as ort
    import torch
    how = "torch.onnx.export"
    try:
        if not export:
            raise RuntimeError("quick mode")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(th_model, (x_nchw,), path, input_names=["x"],
                              output_names=["y"], dynamo=False)
    except Exception:  # noqa: BLE001 - any exporter failure: build the graph ourselves
        _build_onnx(th_model, path)
        how = "an ONNX graph built with the onnx package"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), how


def _build_onnx(th_model, path):
    """Conv/Relu/MaxPool/Flatten/Gemm nodes; the torch model's weights go into one
    external-data file next to the model (no 553 MB protobuf to serialise)."""
    import torch
    from onnx import TensorProto, helper

    data_name = os.path.basename(path) + ".weights"
    fh = open(os.path.join(os.path.dirname(path), data_name), "wb")

    def const(t, name):
        a = np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=a.shape,
                             data_location=TensorProto.EXTERNAL)
        for key, value in (("location", data_name), ("offset", str(fh.tell())),
                           ("length", str(a.nbytes))):
            tensor.external_data.add(key=key, value=value)
        a.tofile(fh)
        return tensor

    nodes, inits, cur = [], [], "x"
    mods = [m for m in th_model if not isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    with fh:
        for i, m in enumerate(mods):
            out = f"t{i}"
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                inits += [const(m.weight, f"w{i}"), const(m.bias, f"b{i}")]
            if isinstance(m, torch.nn.Conv2d):
                nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [out],
                                              pads=[m.padding[0]] * 4,
                                              kernel_shape=list(m.kernel_size)))
            elif isinstance(m, torch.nn.ReLU):
                nodes.append(helper.make_node("Relu", [cur], [out]))
            elif isinstance(m, torch.nn.MaxPool2d):
                nodes.append(helper.make_node("MaxPool", [cur], [out], kernel_shape=[2, 2],
                                              strides=[2, 2]))
            elif isinstance(m, torch.nn.Flatten):
                nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
            elif isinstance(m, torch.nn.Linear):
                nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out],
                                              transB=1))
            cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(nodes, "vgg16", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 224, 224])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8                      # what onnxruntime 1.16+ all accept
    with open(path, "wb") as out_fh:
        out_fh.write(model.SerializeToString())


def run_w3(settings: Settings) -> list[Row]:
    import torch

    import convnet
    div, hw = (16, 224) if settings.smoke else (1, 224)
    spec = vgg16_spec(width_div=div)
    rng = np.random.default_rng(0)
    cn, zoo = _convnet_vgg16(spec, rng, settings.smoke)
    cn.eval()
    th = _torch_twin(spec, zoo)
    copy_weights(cn, th, (7, 7, 512 // div))
    x = rng.standard_normal((1, hw, hw, 3), dtype=np.float32)
    diff = check_same(cn, th, x)
    xc, xt = convnet.Tensor(x), nchw(x)
    flops = spec_conv_flops(spec, 1, hw)

    def cn_run():
        with convnet.no_grad():
            cn(xc)

    def th_run():
        with torch.inference_mode():
            th(xt)

    fns, ort_note = [cn_run, th_run], None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sess, how = _onnx_session(th, xt, os.path.join(tmp, "vgg16.onnx"),
                                      export=not settings.quick)
            xo = xt.numpy()
            y_ort = sess.run(None, {"x": xo})[0]
            with torch.no_grad():
                y_th = th(xt).numpy()
            ort_diff = float(np.abs(y_ort - y_th).max() / np.abs(y_th).max())
            fns.append(lambda: sess.run(None, {"x": xo}))
            ort_note = f"onnxruntime via {how}; outputs agree to {ort_diff:.0e}"
        except ImportError:
            ort_note = "onnxruntime (or onnx) not installed"
        except Exception as exc:  # noqa: BLE001 - report, never crash the harness
            ort_note = f"onnxruntime failed: {type(exc).__name__}: {exc}"[:160]
        times = interleaved(fns, settings.warmup + 1, settings.repeats)
    name = "VGG-16 inference, batch 1, 224x224x3" + (" (1/16 width)" if div > 1 else "")
    src = "zoo vgg16" if zoo else "VGG-16 built from convnet layers"
    rows = [Row("W3", name + " vs torch", "ms", times[0] * 1e3, times[1] * 1e3, better="lower",
                target=1.5, convnet_gflops=flops / times[0] / 1e9,
                torch_gflops=flops / times[1] / 1e9,
                note=f"{src}; outputs agree to {diff:.0e}")]
    if len(times) == 3:
        rows.append(Row("W3", name + " vs onnxruntime", "ms", times[0] * 1e3, times[2] * 1e3,
                        better="lower", target=1.1, convnet_gflops=flops / times[0] / 1e9,
                        torch_gflops=flops / times[2] / 1e9,
                        note=ort_note + " (its GFLOP/s in the torch column)"))
    else:
        rows.append(na_row("W3", name + " vs onnxruntime", "ms", ort_note))
    return rows
