"""convnet.data: datasets, downloads, a resumable loader and batch transforms.

Images are NHWC float32 in [0, 1] and labels int64.  No pickle is read anywhere:
MNIST comes from IDX files, CIFAR-10 from its binary batches, arrays from ``.npz``
files loaded with ``allow_pickle=False``.

Example:
    >>> from convnet import data
    >>> train = data.get_dataset("digits", train=True)
    >>> loader = data.DataLoader(train, batch_size=64, shuffle=True,
    ...                          rng=np.random.default_rng(0))
    >>> for x, y in loader:
    ...     ...
"""

from .cifar import *
from .dataset import *
from .digits import *
from .download import *
from .folder import *
from .idx import *
from .loader import *
from .mnist import *
from .registry import *
from .rng_state import *
from .transforms import *
