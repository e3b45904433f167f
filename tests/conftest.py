import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# isort: off
import tfpvi  # noqa: E402, F401  (first: imports TensorFlow without its start-up log lines)
import tensorflow as tf  # noqa: E402
# isort: on

# Two logical CPU devices, for the tf.distribute test; configured before TF initializes devices.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
