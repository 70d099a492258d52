"""Layers and containers, PyTorch-shaped, on NHWC data.  One topic per module."""

from . import init
from .activation import *
from .conv import *
from .conv_transpose import *
from .convnd import *
from .dropout import *
from .linear import *
from .local import *
from .loss import *
from .mixed import *
from .module import *
from .norm import *
from .pool import *
from .upsample import *
