"""Argument checks and small factories shared by the blocks.

Every check raises `ValueError` naming the argument and the received value, at
construction or build time, so users never meet a backend error from deep inside
an op.
"""

import keras

from kerazoo._checks import check_choice
from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive


def standardize_data_format(data_format):
    if data_format is None:
        return keras.config.image_data_format()
    return check_choice("data_format", data_format, ("channels_last", "channels_first"))


def channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def check_image_input(layer, input_shape, data_format):
    """Checks a 4D image input with a known channel count; returns the channels."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        layout = (
            "(batch, height, width, channels)"
            if data_format == "channels_last"
            else "(batch, channels, height, width)"
        )
        raise ValueError(
            f"{type(layer).__name__} expects a 4D input {layout}. "
            f"Received: input_shape={input_shape}"
        )
    channels = input_shape[channel_axis(data_format)]
    if channels is None:
        raise ValueError(
            f"{type(layer).__name__} needs a known number of channels. "
            f"Received: input_shape={input_shape}"
        )
    return channels


def conv_output_length(length, strides):
    """Output length of a `padding="same"` convolution or pooling."""
    if length is None:
        return None
    return -(-length // strides)


def spatial_output_shape(input_shape, channels, strides, data_format):
    batch = input_shape[0]
    if data_format == "channels_last":
        h, w = input_shape[1], input_shape[2]
        return (
            batch,
            conv_output_length(h, strides),
            conv_output_length(w, strides),
            channels,
        )
    h, w = input_shape[2], input_shape[3]
    return (
        batch,
        channels,
        conv_output_length(h, strides),
        conv_output_length(w, strides),
    )


class BlockMixin:
    """Common options of the convolutional blocks and the factories that use them.

    The blocks share the same convolution settings (initializer, regularizer,
    "same" padding, data format) and the same batch-norm settings, so both are made
    here once.
    """

    def _set_common(
        self,
        activation,
        kernel_initializer,
        kernel_regularizer,
        norm_momentum,
        norm_epsilon,
        data_format,
        folded=False,
    ):
        self.folded = bool(folded)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.norm_momentum = check_fraction("norm_momentum", norm_momentum)
        self.norm_epsilon = check_positive("norm_epsilon", norm_epsilon)
        self.data_format = standardize_data_format(data_format)
        self._channel_axis = channel_axis(self.data_format)

    def _conv(self, filters, kernel_size, strides=1, use_bias=False, name=None):
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=use_bias,
            data_format=self.data_format,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name=None):
        # Imported here: batch_normalization imports this module.
        from kerazoo.layers.batch_normalization import BatchNormalization

        return BatchNormalization(
            axis=self._channel_axis,
            momentum=self.norm_momentum,
            epsilon=self.norm_epsilon,
            folded=self.folded,
            dtype=self.dtype_policy,
            name=name,
        )

    def _act(self, name=None):
        return keras.layers.Activation(
            self.activation, dtype=self.dtype_policy, name=name
        )

    def folding_pairs(self):
        """The (layer, batch norm) pairs of this block in which the batch norm
        reads only that layer's output, with nothing in between: what
        `kerazoo.export.fold_batch_norms` can fold. Blocks that normalise before
        their convolutions (pre-activation, DenseNet) have none."""
        return []

    def _common_config(self):
        folded = {"folded": True} if self.folded else {}
        return {
            **folded,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "norm_momentum": self.norm_momentum,
            "norm_epsilon": self.norm_epsilon,
            "data_format": self.data_format,
        }
