"""What LayerNormalization, GroupNormalization and InstanceNormalization share:
the learnable per-channel scale and offset, their config, and the arithmetic that
applies them. None of these layers keeps running statistics, so they behave the
same in training and inference and work at any batch size, including 1.
"""

import keras
from keras import ops

from kerazoo._checks import check_positive


def normalize(x, mean, variance, epsilon, gamma=None, beta=None):
    """`gamma * (x - mean) / sqrt(variance + epsilon) + beta`, as one multiply-add."""
    inv = ops.rsqrt(variance + epsilon)
    if gamma is not None:
        inv = inv * gamma
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return x * inv + shift


class AffineNormalization(keras.layers.Layer):
    def __init__(
        self,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.epsilon = check_positive("epsilon", epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.supports_masking = True

    def _add_affine_weights(self, shape):
        self.gamma = None
        self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )

    def _affine(self, shape, dtype):
        """gamma and beta reshaped to broadcast against the normalised tensor."""
        gamma = (
            None
            if self.gamma is None
            else ops.reshape(ops.cast(self.gamma, dtype), shape)
        )
        beta = (
            None
            if self.beta is None
            else ops.reshape(ops.cast(self.beta, dtype), shape)
        )
        return gamma, beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }
        base_config = super().get_config()
        return {**base_config, **config}


def check_axis(layer_name, axis, ndim, input_shape):
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{layer_name}: `axis` is out of range for an input of rank {ndim}. "
            f"Received: axis={axis}, input_shape={tuple(input_shape)}"
        )
    return axis % ndim
