"""Static shape checks of layer inputs, with messages that name the input and its expected layout.

Without them a wrong shape fails inside a kernel (``ConcatOp : Dimension 1 in both shapes must be
equal``, ``Incompatible shapes: [2,5,1] vs. [2,4,8]``, ``Index out of range using input dim 1``),
naming neither the layer's input nor what it should be, or it does not fail at all (a mask one
position longer than the sequence broadcasts). Sizes that are unknown when a layer is traced
(``None``) pass; the kernels still check them when the graph runs.

Example:
    >>> check_shapes("GatedKnowledgeFusion", hidden_states=((2, 4, 8), ("batch", "sequence", 8)),
    ...              entity_mask=((2, 5), ("batch", "sequence")))
    Traceback (most recent call last):
    ValueError: GatedKnowledgeFusion: the inputs disagree in sequence: hidden_states (2, 4, 8), entity_mask (2, 5)
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

Axis = Union[int, str]


def check_shapes(owner: str, **inputs: Optional[Tuple[Any, Sequence[Axis]]]) -> None:
    """Check each input (name -> (tensor or shape, layout); an input that is ``None``, or whose
    tensor is, is optional and skipped) against its layout, one entry per axis: an int is the size
    the axis must have, a str names an axis that must have one size across all the inputs
    ("batch", "sequence"; a name used once takes any size). A ``ValueError`` names the first input
    of the wrong rank or size, or the inputs that disagree on a named axis."""
    seen: Dict[str, List[Tuple[str, tuple, int]]] = {}
    for name, spec in inputs.items():
        if spec is None or spec[0] is None:
            continue
        value, layout = spec
        shape = tuple(value.shape) if hasattr(value, "shape") else tuple(value)
        if len(shape) != len(layout) or any(isinstance(axis, int) and size not in (None, axis)
                                            for size, axis in zip(shape, layout)):
            expected = ", ".join(str(axis) for axis in layout)
            raise ValueError(f"{owner}: {name} must be [{expected}], got shape {shape}")
        for size, axis in zip(shape, layout):
            if isinstance(axis, str) and size is not None:
                seen.setdefault(axis, []).append((name, shape, size))
    for axis, sizes in seen.items():
        if len({size for _, _, size in sizes}) > 1:
            named = ", ".join(f"{name} {shape}" for name, shape, _ in sizes)
            raise ValueError(f"{owner}: the inputs disagree in {axis}: {named}")
