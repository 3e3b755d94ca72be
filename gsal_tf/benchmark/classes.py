"""The TextureMNIST class layout: ten digit classes and one background class.

Segmentation label ``k`` in 0-9 is the digit ``k``; :data:`BACKGROUND` (10) is every pixel that
is not a digit, whatever its texture. Networks of the benchmark and of the zoo's TextureMNIST
entries output :data:`NUM_CLASSES` (11) channels in this order, named :data:`CLASS_NAMES`.
"""

from __future__ import annotations

#: Digit classes 0-9.
NUM_DIGITS = 10
DIGITS = tuple(range(NUM_DIGITS))
#: Label of background pixels.
BACKGROUND = 10
NUM_CLASSES = 11
#: Name of each class id: "0" ... "9", "background".
CLASS_NAMES = tuple(str(d) for d in DIGITS) + ("background",)

__all__ = ["NUM_DIGITS", "DIGITS", "BACKGROUND", "NUM_CLASSES", "CLASS_NAMES"]
