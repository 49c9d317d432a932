"""Training, evaluation and data tooling for speechrnn models.

Import the submodules you need: :mod:`training.config` (the frozen configuration),
:mod:`training.data` (the Speech Commands reader and batched augmentation),
:mod:`training.train` (the training loop, ``speechrnn-train``) and :mod:`training.evaluate`.
"""

from __future__ import annotations
