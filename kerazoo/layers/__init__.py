"""kerazoo's Keras layer library: blocks and normalization layers.

Written with `keras.ops` only, so every layer runs under the TensorFlow, JAX and
PyTorch backends; importing this package does not import TensorFlow. Every layer
is registered for serialization under the package name "kerazoo".
"""

from kerazoo.layers.activations import swish
from kerazoo.layers.batch_normalization import BatchNormalization
from kerazoo.layers.convnext import ConvNeXtBlock
from kerazoo.layers.dense_block import DenseBlock
from kerazoo.layers.group_normalization import GroupNormalization
from kerazoo.layers.inception_block import InceptionBlock
from kerazoo.layers.instance_normalization import InstanceNormalization
from kerazoo.layers.layer_normalization import LayerNormalization
from kerazoo.layers.mbconv_block import MBConvBlock
from kerazoo.layers.residual_block import ResidualBlock
from kerazoo.layers.squeeze_excite import SqueezeExcite
from kerazoo.layers.transition_block import TransitionBlock

__all__ = [
    "BatchNormalization",
    "ConvNeXtBlock",
    "DenseBlock",
    "GroupNormalization",
    "InceptionBlock",
    "InstanceNormalization",
    "LayerNormalization",
    "MBConvBlock",
    "ResidualBlock",
    "SqueezeExcite",
    "TransitionBlock",
    "swish",
]
