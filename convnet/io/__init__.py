"""Files: model files (safetensors weights + JSON architecture), training checkpoints and
atomic writes.  Nothing here reads or writes pickle, or evaluates text from a file.

``convnet.save(model, path)`` / ``convnet.load(path)`` are the model-file entry points;
``save_checkpoint`` / ``load_checkpoint`` hold a whole training state.  Malformed files
raise ``ModelFormatError`` (a ``ValueError``; ``CheckpointError`` for checkpoints).
"""

from .architecture import module_to_spec, register_class, registered_classes, spec_to_module
from .atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from .checkpoint import (
    decode_tree,
    encode_tree,
    find_generators,
    generator_state,
    load_checkpoint,
    save_checkpoint,
    set_generator_state,
)
from .errors import CheckpointError, ModelFormatError
from .model_file import load, read_model_metadata, save
from .onnx import export_onnx
from .tensorfile import read_tensor_file, write_tensor_file
from .torch_interop import (
    from_torch_state_dict,
    load_torch_state_dict,
    save_torch_state_dict,
    to_torch_state_dict,
)

__all__ = ["save", "load", "read_model_metadata", "ModelFormatError", "CheckpointError",
           "save_checkpoint", "load_checkpoint", "encode_tree", "decode_tree",
           "generator_state", "set_generator_state", "find_generators", "register_class",
           "registered_classes", "module_to_spec", "spec_to_module", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_json", "atomic_path", "read_tensor_file",
           "write_tensor_file", "export_onnx", "load_torch_state_dict", "to_torch_state_dict",
           "from_torch_state_dict", "save_torch_state_dict"]
