import keras
from keras import ops

from kerazoo._checks import check_fraction
from kerazoo._checks import check_positive
from kerazoo.api import register


def _broadcast_shape(ndim, axis, size):
    shape = [1] * ndim
    shape[axis] = size
    return shape


@register
class BatchNormalization(keras.layers.Layer):
    """Batch normalization written out with `keras.ops`.

    In training, each channel is normalised with the statistics of the current
    batch, `y = gamma * (x - mean) / sqrt(var + epsilon) + beta`, and the moving
    averages follow `moving = moving * momentum + batch_stat * (1 - momentum)`;
    in inference the moving averages replace the batch statistics. The variance is
    the biased (population) one, as in Keras.

    A layer with `trainable=False` always runs in inference mode, even when called
    with `training=True`, and then changes nothing: this is what keeps a frozen
    body bit-identical during the first stage of fine-tuning.

    The constructor takes the same arguments as `keras.layers.BatchNormalization`,
    including batch renormalization (`renorm=True`, Ioffe 2017), so the two are
    interchangeable in configs.

    Args:
        axis: The channel axis to normalise (the others are reduced). -1 for
            channels-last data.
        momentum: Momentum of the moving averages, in [0, 1).
        epsilon: Small positive float added to the variance.
        center: Whether to add the learnable offset `beta`.
        scale: Whether to multiply by the learnable scale `gamma`.
        beta_initializer: Initializer of `beta`.
        gamma_initializer: Initializer of `gamma`.
        moving_mean_initializer: Initializer of the moving mean.
        moving_variance_initializer: Initializer of the moving variance.
        beta_regularizer: Optional regularizer of `beta`.
        gamma_regularizer: Optional regularizer of `gamma`.
        beta_constraint: Optional constraint on `beta`.
        gamma_constraint: Optional constraint on `gamma`.
        renorm: Whether to use batch renormalization: the training output is
            corrected by `r = std_batch / std_moving` and
            `d = (mean_batch - mean_moving) / std_moving` (treated as constants),
            so training and inference see the same normalisation.
        renorm_clipping: Optional dict with keys `"rmin"`, `"rmax"`, `"dmax"`
            clipping `r` and `d`.
        renorm_momentum: Momentum of the moving mean and standard deviation that
            renormalization uses in training.
        synchronized: Whether batch statistics are computed across replicas under
            a `tf.distribute` strategy (TensorFlow backend).
        folded: Whether the layer's scale has been folded into the layer before
            it (`kerazoo.export.fold_batch_norms`): it then only adds `beta`,
            in training and inference alike, and its other weights are unused.
            Exported graphs use it; do not train a folded layer.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: A tensor of any rank.
        training: Whether to use batch statistics and update the moving averages.
            Ignored (inference mode) when the layer is not trainable.

    Returns:
        A tensor of the shape of `inputs`, in the layer's compute dtype.

    Example:

    >>> layer = BatchNormalization(momentum=0.9)
    >>> x = np.random.normal(3.0, 2.0, (64, 8)).astype("float32")
    >>> y = layer(x, training=True)
    >>> float(np.abs(np.mean(y))) < 1e-5
    True

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training
        by Reducing Internal Covariate Shift", ICML 2015.
        Ioffe, "Batch Renormalization", NeurIPS 2017.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        folded=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if folded and not center:
            raise ValueError(
                "A folded BatchNormalization keeps only its offset `beta`, so it "
                "needs center=True. Received: center=False, folded=True"
            )
        self.folded = bool(folded)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = axis
        self.momentum = check_fraction("momentum", momentum)
        self.epsilon = check_positive("epsilon", epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(
            moving_variance_initializer
        )
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.beta_constraint = keras.constraints.get(beta_constraint)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self.renorm = renorm
        if renorm:
            renorm_clipping = dict(renorm_clipping or {})
            unknown = set(renorm_clipping) - {"rmin", "rmax", "dmax"}
            if unknown:
                raise ValueError(
                    "`renorm_clipping` accepts the keys 'rmin', 'rmax' and 'dmax'. "
                    f"Received: renorm_clipping={renorm_clipping}"
                )
            rmin, rmax = renorm_clipping.get("rmin"), renorm_clipping.get("rmax")
            dmax = renorm_clipping.get("dmax")
            if rmin is not None and rmax is not None and rmin > rmax:
                raise ValueError(
                    "`renorm_clipping` needs rmin <= rmax. "
                    f"Received: renorm_clipping={renorm_clipping}"
                )
            if dmax is not None and dmax < 0:
                raise ValueError(
                    "`renorm_clipping` needs dmax >= 0. "
                    f"Received: renorm_clipping={renorm_clipping}"
                )
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = check_fraction("renorm_momentum", renorm_momentum)
        self.synchronized = synchronized
        self.supports_masking = True

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"`axis` is out of range for an input of rank {ndim}. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                "BatchNormalization needs a known size along `axis`. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        if self.renorm:
            variance_init = self.moving_variance_initializer

            def stddev_initializer(shape, dtype=None):
                return ops.sqrt(variance_init(shape, dtype=dtype))

            # Renormalization tracks standard deviations; moving_variance is
            # derived from moving_stddev so that inference code stays the same.
            self.moving_stddev = self.add_weight(
                shape=shape,
                name="moving_stddev",
                initializer=stddev_initializer,
                trainable=False,
                autocast=False,
            )
            self.renorm_mean = self.add_weight(
                shape=shape,
                name="renorm_mean",
                initializer=self.moving_mean_initializer,
                trainable=False,
                autocast=False,
            )
            self.renorm_stddev = self.add_weight(
                shape=shape,
                name="renorm_stddev",
                initializer=stddev_initializer,
                trainable=False,
                autocast=False,
            )
        self.input_spec = keras.InputSpec(ndim=ndim, axes={self.axis: channels})
        axis = self.axis % ndim
        self._reduction_axes = [i for i in range(ndim) if i != axis]
        self._param_shape = _broadcast_shape(ndim, axis, channels)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        # Statistics in float16 overflow easily: compute in at least float32.
        compute = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, compute)
        if self.folded:
            # The scale lives in the kernel before: only the offset is left.
            beta = ops.cast(self.beta, compute)
            channels_last = self.axis % len(inputs.shape) == len(inputs.shape) - 1
            if keras.backend.backend() == "tensorflow" and (
                channels_last or self.axis % len(inputs.shape) == 1
            ):
                # A BiasAdd, not an AddV2: TensorFlow's graph optimizer fuses a
                # convolution with its BiasAdd (and a residual add and ReLU after
                # it) into one oneDNN kernel, where it turns `x + beta +
                # residual` into one AddN and leaves the convolution alone.
                import tensorflow as tf

                x = tf.nn.bias_add(
                    x, beta, data_format="N...C" if channels_last else "NC..."
                )
                return ops.cast(x, self.compute_dtype)
            if not channels_last:
                beta = ops.reshape(beta, self._param_shape)
            return ops.cast(x + beta, self.compute_dtype)

        if training and self.trainable:
            mean, variance = ops.moments(
                x, axes=self._reduction_axes, synchronized=self.synchronized
            )
            if self.renorm:
                r, d = self._renorm_correction(mean, variance)
                self._update_renorm_statistics(mean, variance)
            else:
                r = d = None
                momentum = self.momentum
                self.moving_mean.assign(
                    ops.cast(self.moving_mean, compute) * momentum
                    + mean * (1.0 - momentum)
                )
                self.moving_variance.assign(
                    ops.cast(self.moving_variance, compute) * momentum
                    + variance * (1.0 - momentum)
                )
        else:
            mean = ops.cast(self.moving_mean, compute)
            variance = ops.cast(self.moving_variance, compute)
            r = d = None

        # y = x * a + b with a = gamma / sqrt(var + eps), b = beta - mean * a:
        # one multiply-add over the large tensor.
        a = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            a = a * ops.cast(self.gamma, compute)
        b = -mean * a
        if r is not None:
            # (x_hat * r + d) * gamma + beta
            gamma = ops.cast(self.gamma, compute) if self.scale else 1.0
            a = a * r
            b = b * r + d * gamma
        if self.center:
            b = b + ops.cast(self.beta, compute)
        a = ops.reshape(a, self._param_shape)
        b = ops.reshape(b, self._param_shape)
        return ops.cast(x * a + b, self.compute_dtype)

    def _renorm_correction(self, mean, variance):
        stddev = ops.sqrt(variance + self.epsilon)
        renorm_mean = ops.cast(self.renorm_mean, mean.dtype)
        renorm_stddev = ops.maximum(
            ops.cast(self.renorm_stddev, mean.dtype), ops.sqrt(self.epsilon)
        )
        r = stddev / renorm_stddev
        d = (mean - renorm_mean) / renorm_stddev
        clipping = self.renorm_clipping
        if clipping.get("rmin") is not None:
            r = ops.maximum(r, clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = ops.minimum(r, clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        return ops.stop_gradient(r), ops.stop_gradient(d)

    def _update_renorm_statistics(self, mean, variance):
        stddev = ops.sqrt(variance + self.epsilon)
        m = self.renorm_momentum
        self.renorm_mean.assign(
            ops.cast(self.renorm_mean, mean.dtype) * m + mean * (1 - m)
        )
        self.renorm_stddev.assign(
            ops.cast(self.renorm_stddev, mean.dtype) * m + stddev * (1 - m)
        )
        m = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, mean.dtype) * m + mean * (1 - m)
        )
        moving_stddev = ops.cast(self.moving_stddev, mean.dtype) * m + stddev * (1 - m)
        self.moving_stddev.assign(moving_stddev)
        self.moving_variance.assign(
            ops.relu(moving_stddev * moving_stddev - self.epsilon)
        )

    def get_config(self):
        config = {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": keras.initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": keras.initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
            "synchronized": self.synchronized,
        }
        if self.folded:
            config["folded"] = True
        base_config = super().get_config()
        return {**base_config, **config}
