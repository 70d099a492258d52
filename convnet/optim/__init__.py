"""convnet.optim: optimizers, learning-rate schedules and gradient clipping.

Every optimizer and schedule has ``state_dict()`` / ``load_state_dict()`` whose leaves
are NumPy arrays or JSON-able values, and the optimizers match ``torch.optim`` step
for step.

Example:
    >>> from convnet import optim
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> sched = optim.CosineAnnealingLR(opt, T_max=10)
    >>> loss.backward()
    >>> optim.clip_grad_norm_(model.parameters(), 5.0)
    >>> opt.step(); opt.zero_grad(); sched.step()
"""

from .adam import *
from .clip import *
from .lr_scheduler import *
from .optimizer import *
from .registry import *
from .rmsprop import *
from .sgd import *
