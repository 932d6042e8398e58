"""Model and pretraining configurations as dataclasses with named presets.

Example:
    >>> from rw_tf.config import EncoderConfig
    >>> cfg = EncoderConfig.preset("tiny", vocab_size=1000)
    >>> cfg.hidden_size
    64
"""
from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import json
import math
import numbers
import struct
import typing
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple


def is_integer(value: Any) -> bool:
    """An ``int`` field's value: Python's or NumPy's integers, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A ``float`` field's value: any real number (integers too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_float32(number: float) -> float:
    """``number`` rounded to float32: 0 below its smallest subnormal (about 1.4e-45), +-inf beyond
    its largest value (about 3.4e38). A setting that is 0 or inf there is not the number given:
    Adam's epsilon of 1e-300 passed "> 0" and divided 0 by 0, making NaN every weight whose
    gradient was 0 (``rw-tf finetune --adam-epsilon 1e-300`` stopped at step 2 on a NaN loss, with
    a hint to lower the learning rate); a temperature of 1e39 made every distribution uniform."""
    try:
        return struct.unpack("f", struct.pack("f", number))[0]
    except OverflowError:
        return math.copysign(math.inf, number)


def has_type(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field annotation (int is not bool; float accepts int; a class
    needs an instance; other annotations are not checked)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint in (bool, str):
        return isinstance(value, hint)
    if hint in (int, float):
        return is_number(value) if hint is float else is_integer(value)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:    # Tuple[int, float]: one type per place
            return len(value) == len(args) and all(has_type(v, a) for v, a in zip(value, args))
        return all(has_type(v, args[0] if args else Any) for v in value)
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True   # e.g. a nested config


def changed_settings(earlier: Dict[str, Any], current: Dict[str, Any], prefix: str = "") -> List[str]:
    """``"name <earlier> (now <current>)"`` for each setting that differs (JSON values; nested
    objects are compared key by key, named ``outer.inner``)."""
    changes = []
    for key in sorted(set(earlier) | set(current)):
        old, new = earlier.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {json.dumps(old)} (now {json.dumps(new)})")
    return changes


def check_choice(what: str, value: Any, choices: Any) -> None:
    """A ``ValueError`` that lists ``choices`` when ``value`` (a ``what``, e.g. "pooling") is not one."""
    if value not in choices:
        shown = tuple(choices) if isinstance(choices, (tuple, list)) else sorted(choices)
        raise ValueError(f"unknown {what} {value!r}; choose one of {shown}")


def type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _number_range(name: str, may_be_zero: bool) -> Tuple[float, bool, float, bool, str]:
    """(low, low included, high, high included, words) a number field called ``name`` must lie in
    (see ``DictConfig.check_numbers``)."""
    if name.endswith(("eval_fraction", "calibration_fraction")):     # a held-out share of the data
        return 0.0, may_be_zero, 1.0, False, f"in {'[' if may_be_zero else '('}0, 1)"
    if "dropout" in name:
        return 0.0, True, 1.0, False, "in [0, 1)"
    if "learning_rate" not in name and any(part in name for part in ("fraction", "ratio", "_rate", "lower_bound",
                                                                      "metric_drop")):
        return 0.0, True, 1.0, True, "in [0, 1]"
    if name in ("seed", "seeds"):
        return 0.0, True, 2.0 ** 32 - 1, True, "in [0, 2**32 - 1]"
    if name == "port" or name.endswith("_port"):   # 0 (where it may be zero): the system picks a free one
        return 0.0, may_be_zero, 65_535, True, f"{'>=' if may_be_zero else '>'} 0 and at most 65,535 (a TCP port)"
    if name.endswith(("timeout", "_seconds")):   # not batch_timeout_micros
        return 0.0, False, MAX_WAIT_SECONDS, True, (f"> 0 and at most {MAX_WAIT_SECONDS:,} (seconds, a day; "
                                                     "longer waits overflow timers and sockets)")
    high, why = next(((high, why) for parts, high, why in SIZE_BOUNDS if any(part in name for part in parts)),
                     (math.inf, ""))
    words = (">= 0" if may_be_zero else "> 0") + (f" and at most {high:,} ({why})" if why else "")
    return 0.0, may_be_zero, high, True, words


# Upper bounds of sizes that become padded tensors, int32 fields or processes. Without them a
# pipeline config of max_sequence_length 10**9 passed every check (and the Transform pads every
# example to it), steps past 2**31 - 1 failed later with protobuf's bare "Value out of range" (TFX's
# num_steps is an int32), and beam_direct_num_workers is how many processes Beam starts.
MAX_TOKENS = 32_768
MAX_WAIT_SECONDS = 86_400
MAX_BACKOFF_SECONDS = 60   # the longest wait between a client's retries
# Every other integer: a larger one (--num-classes 2**63) failed deep inside with NumPy's
# OverflowError or TensorFlow's "out-of-range integer", as an unexpected failure.
MAX_INT64 = 2**63 - 1
INT64_WHY = "an int64, the largest integer TensorFlow and NumPy hold"
SIZE_BOUNDS = (
    (("sequence_length", "caption_length", "text_length", "question_length", "answer_length", "max_history",
      "max_predictions_per_seq"), MAX_TOKENS, "positions an example is padded to; attention grows with their square"),
    (("steps", "epochs", "batches"), 2**31 - 1, "an int32, as TFX's num_steps"),
    (("image_size",), 4_096, "pixels a side"),
    (("max_windows",), 1_024, "windows one question's context is cut into; the pipeline pads every example to it"),
    (("page_bytes",), 1 << 30, "a web page is held in memory whole"),
    (("memory_mb",), 1 << 20, "MiB, a TiB"),
    (("vocab_size",), 1 << 22, "rows of the embedding table"),
    (("workers",), 1_024, "processes or threads started"),
    (("message_bytes", "request_bytes"), 2**31 - 1, "gRPC takes it as a C int; protobuf messages stop at 2 GiB"),
    (("version",), 2**63 - 1, "an int64, as TF Serving's versions"),
    (("retries",), 100, "calls after the first"),
    (("backoff",), MAX_BACKOFF_SECONDS, "seconds before the first retry; each next wait doubles, up to a minute"),
)


def _number_annotation(hint: Any) -> Optional[Tuple[type, bool, bool]]:
    """(int or float, whether a list of them, whether None is allowed) for a number annotation such
    as ``int``, ``Optional[float]`` or ``Sequence[int]``; None for any other."""
    optional = False
    if typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1:
            return None
        optional, hint = len(rest) < len(typing.get_args(hint)), rest[0]
    if hint in (int, float):
        return hint, False, optional
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple, collections.abc.Sequence) and args and args[0] in (int, float) \
            and (origin is not tuple or len(args) == 1 or args[-1] is Ellipsis):
        return args[0], True, optional
    return None


def check_numbers(owner: str, values: Mapping[str, Any], hints: Mapping[str, Any],
                  may_be_zero: Sequence[str] = ()) -> None:
    """Check the numbers among ``values`` (name -> value) of ``owner`` (a config or a layer).

    Type, by the annotation in ``hints``: an ``int`` is an integer (Python's or NumPy's, not a
    bool), a ``float`` any real number but a bool, a ``Sequence[int]`` a list or tuple of integers,
    else ``TypeError``. Range, by the name (``DictConfig``'s docstring gives the rules; names in
    ``may_be_zero`` may be 0), else ``ValueError``; this also covers numbers under annotations that
    are not number types. The numbers of a list may not repeat."""
    for name, value in values.items():
        annotation = _number_annotation(hints.get(name))
        float_field = annotation is not None and annotation[0] is float
        if annotation is not None and not (value is None and annotation[2]):
            number_type, is_list, _ = annotation
            fits = is_integer if number_type is int else is_number
            if not (isinstance(value, (list, tuple)) and all(fits(x) for x in value) if is_list else fits(value)):
                one, many = ("an integer", "integers") if number_type is int else ("a number", "numbers")
                expected = f"a list of {many}" if is_list else one
                raise TypeError(f"{owner}.{name} must be {expected}, got {value!r}"[:300])
        is_list = isinstance(value, (list, tuple))
        numbers_here = [(f"{name}[{i}]", x) for i, x in enumerate(value)] if is_list else [(name, value)]
        numbers_here = [(label, x) for label, x in numbers_here if is_number(x)]
        for label, number in numbers_here:
            low, low_in, high, high_in, words = _number_range(name, name in may_be_zero)
            if high == math.inf and is_integer(number) and not float_field and number > MAX_INT64:
                raise ValueError(f"{owner}.{label} must be at most {MAX_INT64:,} ({INT64_WHY}), got {number:,}")
            inside = (math.isfinite(number) and (number >= low if low_in else number > low)
                      and (number <= high if high_in else number < high))
            if not inside:
                raise ValueError(f"{owner}.{label} must be {words}, got {number}")
            if float_field or not is_integer(number):
                single = as_float32(number)
                if math.isinf(single) or (single == 0) != (number == 0):
                    raise ValueError(f"{owner}.{label} must be {words}, got {number}: that is {single} as a "
                                     "float32, the precision rw-tf computes in")
        # A list of numbers (seeds, block indices) names each once: `--seeds 0 0` would count one
        # run twice in a mean and its spread.
        repeated = sorted(x for x, n in collections.Counter(x for _, x in numbers_here).items() if n > 1)
        if repeated:
            raise ValueError(f"{owner}.{name} repeats {repeated}: give each once")


def checks_number_arguments(*, may_be_zero: Sequence[str] = ()) -> Callable[[Any], Any]:
    """Decorator of a class (its ``__init__``) or a function: the arguments a call is given go to
    ``check_numbers`` first (annotations give their types, names their ranges), so that a Keras
    layer, model, loss or export module refuses ``hidden_size=-1``, ``temperature=nan`` or
    ``dropout=True`` when it is made, as the configs do, instead of failing in ``build``, training
    the wrong way or serving wrong answers. Messages name the class (or the function).

    Example:
        >>> @checks_number_arguments(may_be_zero=("kd_weight",))
        ... class Head:
        ...     def __init__(self, hidden_size: int, kd_weight: float = 0.0) -> None:
        ...         self.hidden_size = hidden_size
        >>> Head(hidden_size=-1)
        Traceback (most recent call last):
        ValueError: Head.hidden_size must be > 0, got -1
    """
    def decorate(target: Any) -> Any:
        is_class = isinstance(target, type)
        function = target.__init__ if is_class else target
        signature = inspect.signature(function)
        named = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        hints: List[Dict[str, Any]] = []   # resolved at the first call: annotations may name later classes

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not hints:
                hints.append(_resolved_annotations(function, named))
            given = signature.bind_partial(*args, **kwargs).arguments
            owner = type(args[0]).__name__ if is_class else target.__qualname__
            check_numbers(owner, {n: given[n] for n in named if n in given}, hints[0], may_be_zero)
            return function(*args, **kwargs)

        # Keras reads the argument names of __init__ with getfullargspec, which honours
        # __signature__ but not __wrapped__.
        checked.__signature__ = signature  # type: ignore[attr-defined]
        if not is_class:
            return checked
        target.__init__ = checked
        return target
    return decorate


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> Dict[str, Any]:
    """A config class's field annotations, resolved once per class (configs are made often)."""
    return typing.get_type_hints(cls)


def _resolved_annotations(function: Callable[..., Any], names: Sequence[str]) -> Dict[str, Any]:
    """The annotations of ``function``'s ``names`` as objects; one that cannot be resolved (a name
    imported only for type checkers) is left out, and so is not checked."""
    resolved = {}
    for name in names:
        annotation = function.__annotations__.get(name)
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, function.__globals__, vars(typing))  # noqa: S307 (an annotation)
            except Exception:   # noqa: BLE001 (any failure: leave it unchecked)
                continue
        if annotation is not None:
            resolved[name] = annotation
    return resolved


class DictConfig:
    """Mixin of the config dataclasses: JSON-ready ``to_dict`` (tuples become lists), a strict
    ``from_dict`` (unknown keys and values of the wrong type are errors naming ``source``; lists
    become tuples where the field's default is a tuple) and range checks of every number.

    ``check_numbers`` and ``check_texts`` (no empty text) run first when a config is made, then the
    subclass's own ``validate``. A number (bools and ``None`` are not checked) must be finite and,
    by its name: held-out shares
    (``*eval_fraction``, ``*calibration_fraction``) in (0, 1); a dropout rate in [0, 1); other
    fractions, ratios, rates (not learning rates), gate bounds and ``max_metric_drop`` in [0, 1];
    ``seed`` in [0, 2**32 - 1] (NumPy's range); ports (``port``, ``*_port``) at most 65,535; waits
    (``*timeout``, ``*_seconds``) at most a day; names in ``may_be_zero`` >= 0 (a held-out share
    [0, 1)); everything else > 0, with the upper bounds of ``SIZE_BOUNDS`` (an integer without one:
    at most ``MAX_INT64``). A float (or any non-integer) must keep its meaning as a float32: not 0
    there unless it is 0, not infinite (``as_float32``). The numbers of a list
    field (``seeds``, ``knowledge_layers``) follow its name's rule each, and none may repeat. A
    negative learning rate, temperature or loss weight would otherwise train without a word, the
    wrong way.
    """

    may_be_zero: ClassVar[Tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.check_numbers()
        self.check_texts()
        self.validate()

    def check_texts(self) -> None:
        """No text field (or text in a list field) is empty: ``""`` names no file, model or preset,
        and code that tests ``if config.vocab_file:`` would take it for "not given" without a word."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            for text in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(text, str) and not text:
                    raise ValueError(f"{type(self).__name__}.{field.name} is empty: give a value or leave it out")

    def validate(self) -> None:
        """A subclass's own checks, after ``check_numbers``."""

    def require_defaults(self, names: Sequence[str], read_when: str) -> None:
        """``ValueError`` unless the fields ``names`` keep their defaults: the other settings leave
        them unread (``read_when`` says when they are read), and a value given for nothing would
        otherwise be ignored without a word (``--pairs`` training on the corpus instead)."""
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(self) if f.name in names}
        changed = [name for name in names if getattr(self, name) != defaults[name]]
        if changed:
            raise ValueError(f"{type(self).__name__}: {', '.join(changed)} "
                             f"{'is' if len(changed) == 1 else 'are'} read {read_when} only; leave "
                             f"{'it' if len(changed) == 1 else 'them'} unset or change that setting")

    def check_numbers(self) -> None:
        check_numbers(type(self).__name__, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                      _type_hints(type(self)), self.may_be_zero)

    def to_dict(self, exclude: Sequence[str] = ()) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if k not in exclude}

    @classmethod
    def from_dict(cls, values: Dict[str, Any], source: str = "config") -> Any:
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__} settings in {source} must be an object, not a {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys in {source}: {unknown}; known: {sorted(fields)}")
        hints = _type_hints(cls)
        for key, value in values.items():
            none_default = value is None and fields[key].default is None
            if not (none_default or has_type(value, hints[key])):
                raise ValueError(f"{cls.__name__}.{key} in {source} must be {type_name(hints[key])}, "
                                 f"got {json.dumps(value)[:60]}")
        return cls(**{k: tuple(v) if isinstance(v, list) and isinstance(fields[k].default, tuple) else v
                      for k, v in values.items()})


@dataclasses.dataclass(frozen=True)
class EncoderConfig(DictConfig):
    """Sizes of the Transformer encoder.

    Presets: ``tiny`` (unit tests), ``small`` (quick experiments on a CPU, BERT-Small sizes)
    and ``base`` (BERT-base dimensions).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_sequence_length: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    initializer_range: float = 0.02

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "EncoderConfig":
        """Returns the named preset with ``overrides`` applied."""
        check_choice("encoder preset", name, ENCODER_PRESETS)
        return dataclasses.replace(ENCODER_PRESETS[name], **overrides)

    @classmethod
    def check_preset_blocks(cls, name: str, blocks: Sequence[int], field: str = "knowledge_layers") -> None:
        """``blocks`` (indices of Transformer blocks, e.g. where knowledge is fused) must name at
        least one block of the preset ``name``, each in 0 .. num_layers - 1."""
        num_layers = cls.preset(name).num_layers   # also checks the preset's name
        if not blocks or not all(0 <= block < num_layers for block in blocks):
            raise ValueError(f"{field} {list(blocks)} must name blocks of the {name!r} encoder "
                             f"(at least one, each 0 to {num_layers - 1})")

    @classmethod
    def preset_for_length(cls, name: str, vocab_size: int, max_sequence_length: int) -> "EncoderConfig":
        """The preset with ``vocab_size``, and position embeddings for at least ``max_sequence_length``."""
        preset = cls.preset(name)
        return dataclasses.replace(preset, vocab_size=vocab_size,
                                   max_sequence_length=max(max_sequence_length, preset.max_sequence_length))

ENCODER_PRESETS: Dict[str, EncoderConfig] = {
    "tiny": EncoderConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                          max_sequence_length=128, dropout=0.0, attention_dropout=0.0),
    "small": EncoderConfig(hidden_size=512, num_layers=4, num_heads=8, intermediate_size=2048,
                           max_sequence_length=512),
    "base": EncoderConfig(),
}


@dataclasses.dataclass(frozen=True)
class PretrainingDataConfig(DictConfig):
    """How pretraining examples are built (defaults follow BERT's create_pretraining_data.py).

    ``masked_lm_rate`` of the candidate tokens are chosen (at least one, at most
    ``max_predictions_per_seq``); of those ``mask_token_rate`` become [MASK],
    ``random_token_rate`` a random vocabulary token and the rest stay unchanged.
    """

    max_sequence_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_rate: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1
    whole_word_masking: bool = False
    nsp_random_rate: float = 0.5
    sop_swap_rate: float = 0.5
    seed: int = 12345

    def validate(self) -> None:
        if self.max_sequence_length < 5:
            raise ValueError("max_sequence_length must be at least 5 ([CLS] a [SEP] b [SEP])")
        if self.mask_token_rate + self.random_token_rate > 1.0:
            raise ValueError("mask_token_rate + random_token_rate must not exceed 1")

