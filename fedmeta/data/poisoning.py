"""Data-poisoning attacks on client datasets, for robustness studies.

Attackers poison their own training data, the model-update attacks of
`fedmeta.aggregation.MaliciousClientsFactory` left aside: they train honestly
on data they altered. Every transform is pure tf.data over a client's
unbatched elements `{'x': ..., 'y': int32 []}`; other keys (e.g. `support`)
pass through untouched.

- `attackers`: a fixed, seeded set of clients. A data poisoner owns its data,
  so the set is the same every round, as in the backdoor literature
  (Bagdasaryan et al. 2020, "How To Backdoor Federated Learning"; Sun et al.
  2019, "Can You Really Backdoor Federated Learning?").
- `flip_labels`: label flipping, y -> num_classes - 1 - y on every example
  (Fang et al. 2020, "Local Model Poisoning Attacks to Byzantine-Robust
  Federated Learning"; Tolpegin et al. 2020, "Data Poisoning Attacks Against
  Federated Learning Systems", flip one source class the same way).
- `backdoor`: a pixel-pattern backdoor (Gu et al. 2017, "BadNets"): each
  example, with probability `poison_fraction`, gets the `Trigger` patch and
  the attacker's `target` label; the others stay clean so the model keeps
  its main accuracy. This is the "naive" backdoor of Bagdasaryan et al.,
  without model replacement (no boosting of the update).
- `triggered_test_set`: the test examples whose label is not `target`, with
  the trigger and label `target`: a model's accuracy on it is the backdoor
  success rate (attack success rate), as Bagdasaryan et al. and Sun et al.
  measure it.

The trigger is a `size` x `size` checkerboard of the values `high` and `low`
(`high` at the patch's top-left), at the bottom-right corner of the image
and on every channel, so it shows on light and dark backgrounds alike.
Images are x of static shape [h, w, c] or [h, w], or flat [h * w] with
`image_shape=(h, w)`; `image_shape_of` finds (h, w) from an element spec.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from fedmeta.data import task as task_lib

# A flat x of n >= this many features, n a perfect square, counts as an
# image (scikit-learn's 8x8 digits: 64); smaller squares are too few pixels
# to hold a trigger beside the digit.
_MIN_FLAT_PIXELS = 16


@dataclasses.dataclass(frozen=True)
class Trigger:
  """A checkerboard patch at an image's bottom-right corner.

  Attributes:
    low: Pixel value of the patch's dark squares (the task's minimum, e.g. 0).
    high: Pixel value of its light squares (the task's maximum, e.g. 1, or
      16 for scikit-learn's raw digits); the patch's top-left pixel is high.
    size: Side of the square patch, in pixels.
  """
  low: float
  high: float
  size: int = 3

  def __post_init__(self):
    if isinstance(self.size, bool) or not isinstance(self.size, int) or (
        self.size < 1):
      raise task_lib.DataError(
          f'size: must be an integer >= 1, got {self.size!r}')


def attackers(client_ids, fraction: float, seed: int) -> frozenset[str]:
  """round(fraction * len(client_ids)) clients drawn at random, seeded.

  The draw depends on the ids, not their order. Python's `round` rounds
  halves to even (2.5 clients -> 2).

  Raises:
    DataError: If `fraction` is not in [0, 1].
  """
  if not 0 <= fraction <= 1:
    raise task_lib.DataError(f'fraction: must be in [0, 1], got {fraction}')
  ids = sorted(client_ids)
  count = round(fraction * len(ids))
  chosen = np.random.default_rng(seed).choice(len(ids), count, replace=False)
  return frozenset(ids[i] for i in chosen)


def flip_labels(dataset: tf.data.Dataset, num_classes: int) -> tf.data.Dataset:
  """Every label y in [0, num_classes) becomes num_classes - 1 - y."""
  if num_classes < 2:
    raise task_lib.DataError(
        f'num_classes: must be >= 2, got {num_classes}')

  def flip(element):
    y = element['y']
    return _replace(element, y=tf.cast(num_classes - 1, y.dtype) - y)

  return dataset.map(flip)


def image_shape_of(element_spec) -> tuple[int, int] | None:
  """(h, w) of the images in `element_spec['x']`, or None if not images.

  x of static shape [h, w, c] or [h, w] is an image; so is a flat [n] with n
  a perfect square >= 16, taken as a flattened square image such as
  scikit-learn's 8x8 digits. Anything else (tabular features, text, unknown
  dimensions) gives None.
  """
  shape = element_spec['x'].shape
  if shape.rank in (2, 3) and None not in shape[:2]:
    return (shape[0], shape[1])
  if shape.rank == 1 and shape[0] is not None:
    side = math.isqrt(shape[0])
    if side * side == shape[0] and shape[0] >= _MIN_FLAT_PIXELS:
      return (side, side)
  return None


def _patch(shape: tf.TensorShape, trigger: Trigger,
           image_shape) -> tuple[np.ndarray, np.ndarray]:
  """(mask, values) of the trigger for one x of `shape`, both of x's rank
  and broadcastable to it.

  Raises:
    DataError: If `shape` is not that of an image (of `image_shape`, where
      given) at least `trigger.size` pixels high and wide.
  """
  shape = tf.TensorShape(shape)
  if shape.rank == 1 and image_shape is not None:
    height, width = image_shape
    if shape[0] != height * width:
      raise task_lib.DataError(
          f'x: shape {shape} is not a flat image of image_shape '
          f'{tuple(image_shape)}')
  elif shape.rank in (2, 3) and None not in shape[:2]:
    height, width = shape[0], shape[1]
    if image_shape is not None and tuple(image_shape) != (height, width):
      raise task_lib.DataError(
          f'x: shape {shape} does not match image_shape '
          f'{tuple(image_shape)}')
  else:
    raise task_lib.DataError(
        f'x: shape {shape} is not an image: need static [h, w, c] or [h, w], '
        'or [h * w] with image_shape')
  size = trigger.size
  if size > min(height, width):
    raise task_lib.DataError(
        f'x: shape {shape} is smaller than the {size}x{size} trigger')
  mask = np.zeros([height, width], bool)
  mask[-size:, -size:] = True
  values = np.zeros([height, width], np.float64)
  rows, cols = np.indices([size, size])
  values[-size:, -size:] = np.where((rows + cols) % 2 == 0, trigger.high,
                                    trigger.low)
  if shape.rank == 1:
    return mask.reshape(-1), values.reshape(-1)
  if shape.rank == 3:
    return mask[..., None], values[..., None]
  return mask, values


def apply_trigger(x: tf.Tensor, trigger: Trigger,
                  image_shape: tuple[int, int] | None = None) -> tf.Tensor:
  """One example's `x` with the trigger pasted in; pure TF.

  Args:
    x: An image of static shape [h, w, c] or [h, w], or a flat [h * w] one.
    trigger: The patch.
    image_shape: (h, w) of a flat x; for other shapes None or x's own (h, w).

  Raises:
    DataError: If x's shape is not that of an image that holds the patch.
  """
  mask, values = _patch(x.shape, trigger, image_shape)
  return tf.where(mask, tf.cast(values, x.dtype), x)


def backdoor(dataset: tf.data.Dataset, trigger: Trigger, *, target: int,
             poison_fraction: float, seed,
             image_shape: tuple[int, int] | None = None) -> tf.data.Dataset:
  """An attacker's training data, partly triggered and relabelled `target`.

  Args:
    dataset: Unbatched client dataset of images `x` and labels `y`.
    trigger: The patch.
    target: The label that triggered inputs get.
    poison_fraction: In (0, 1]: each example is poisoned with this
      probability, independently, by a stateless draw seeded by `seed` and
      its position in `dataset`, so the same examples are poisoned on every
      pass.
    seed: Integer (or scalar integer tensor) seed of the draws; attackers
      with one seed poison the same positions, so give each its own (e.g.
      hashed from its client id).
    image_shape: (h, w) of a flat x; see `apply_trigger`.

  Returns:
    The same examples in the same order; unpoisoned ones unchanged.

  Raises:
    DataError: If an argument is out of range or x is not an image.
  """
  if not 0 < poison_fraction <= 1:
    raise task_lib.DataError(
        f'poison_fraction: must be in (0, 1], got {poison_fraction}')
  _check_target(target)
  mask, values = _patch(dataset.element_spec['x'].shape, trigger, image_shape)
  seed = tf.cast(seed, tf.int64)

  def poison(position, element):
    x, y = element['x'], element['y']
    draw = tf.random.stateless_uniform([], tf.stack([seed, position]))
    poisoned = draw < poison_fraction
    triggered = tf.where(mask, tf.cast(values, x.dtype), x)
    return _replace(
        element, x=tf.where(poisoned, triggered, x),
        y=tf.where(poisoned, tf.constant(target, y.dtype), y))

  return dataset.enumerate().map(poison)


def triggered_test_set(dataset: tf.data.Dataset, trigger: Trigger, *,
                       target: int,
                       image_shape: tuple[int, int] | None = None
                       ) -> tf.data.Dataset:
  """The backdoor success-rate set of a test dataset.

  The examples whose label is not `target`, each with the trigger and the
  label `target`: a model's accuracy on this set is the attack success rate,
  the fraction of triggered inputs it sends to `target`. Examples already of
  class `target` are left out, as they would count as successes whatever the
  model learnt.

  Raises:
    DataError: If `target` is negative or x is not an image.
  """
  _check_target(target)
  mask, values = _patch(dataset.element_spec['x'].shape, trigger, image_shape)

  def trigger_and_relabel(element):
    x, y = element['x'], element['y']
    return _replace(element,
                    x=tf.where(mask, tf.cast(values, x.dtype), x),
                    y=tf.constant(target, y.dtype))

  return dataset.filter(
      lambda element: element['y'] != target).map(trigger_and_relabel)


def _check_target(target) -> None:
  if isinstance(target, bool) or not isinstance(target, int) or target < 0:
    raise task_lib.DataError(
        f'target: must be an integer label >= 0, got {target!r}')


def _replace(element, **values):
  """`element` with some keys replaced, of the same mapping type (the key
  order of an OrderedDict is kept: TFF checks it)."""
  element = type(element)(element)
  element.update(values)
  return element
