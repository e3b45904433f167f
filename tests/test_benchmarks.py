"""The benchmarks' own arithmetic, checked against what TensorFlow computes (no timing here)."""

import pytest
import tensorflow as tf

from benchmarks import core


def _graph_matmul_flops(graph: tf.Graph) -> float:
  """2 * M * N * K summed over the graph's MatMul ops, read from their operands' static shapes."""
  flops = 0.0
  for op in graph.get_operations():
    if op.type != "MatMul":
      continue
    a, b = (t.shape.as_list() for t in op.inputs)
    rows = a[1] if op.get_attr("transpose_a") else a[0]
    inner = a[0] if op.get_attr("transpose_a") else a[1]
    cols = b[0] if op.get_attr("transpose_b") else b[1]
    assert inner == (b[1] if op.get_attr("transpose_b") else b[0])
    flops += 2.0 * rows * inner * cols
  return flops


@pytest.mark.parametrize("k,batch", [(1, 1), (3, 2), (50, 20)])
def test_the_step_floor_counts_the_matmuls_tensorflow_builds_for_the_step(k, batch):
  d, _, _, latent = core.SIZES
  weights = [tf.Variable(tf.zeros(s)) for s in core.LAYER_SHAPES]
  graph = (
    tf.function(lambda x, z: core.matmul_chain_gradients(weights, x, z))
    .get_concrete_function(tf.TensorSpec([batch, d]), tf.TensorSpec([k * batch, latent]))
    .graph
  )
  assert not [op.type for op in graph.get_operations() if op.type.startswith("BatchMatMul")]
  assert core.training_matmul_flops(k, batch) == _graph_matmul_flops(graph)


def test_the_raw_loop_flattens_the_decoders_rows_into_two_dimensional_matmuls():
  """A rank-3 latent through `@` is a batched matmul, whose weight gradient sums k per-sample products."""
  model = core.RawIWAE()

  def loss(x):
    with tf.GradientTape() as tape:
      value = model.loss(x, 5, tf.constant([0, 1]))
    return tape.gradient(value, model.params)

  graph = tf.function(loss).get_concrete_function(tf.TensorSpec([4, 784])).graph
  assert not [op.type for op in graph.get_operations() if op.type.startswith("BatchMatMul")]
