"""Type aliases shared across tfpvi."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["Activation", "DistributionFn", "ObjectiveValue", "Seed", "Shape", "TensorLike"]

TensorLike = Union[tf.Tensor, "tf.Variable", float, Sequence[float]]
Shape = Sequence[int]
Seed = Union[None, int, tf.Tensor]  # None, a Python int, or a stateless [2] int Tensor.
Activation = Callable[[tf.Tensor], tf.Tensor]
DistributionFn = Callable[[tf.Tensor], tfp.distributions.Distribution]
ObjectiveValue = Union[tf.Tensor, Mapping[str, tf.Tensor]]
