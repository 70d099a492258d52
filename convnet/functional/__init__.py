"""Tensor-level ops, PyTorch's ``torch.nn.functional`` for NHWC data.

Import as ``import convnet.functional as F``.  Each op is a thin ``Function`` over a
forward/backward pair in ``convnet.ops``; one topic per module, re-exported here.
"""

from .activation import *
from .conv import *
from .conv_transpose import *
from .convnd import *
from .dropout import *
from .linear import *
from .local import *
from .loss import *
from .norm import *
from .pad import *
from .pool import *
from .upsample import *
