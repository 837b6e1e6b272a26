"""The registered MobileNets: name, architecture options and trainable
parameters (1000 classes), each equal to keras.applications' for the same
configuration (the tests build both)."""

PAPER_V2 = (
    "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
)
PAPER_V3 = "Howard et al., Searching for MobileNetV3, ICCV 2019"

# name: {version, width, size and minimalistic (V3), params, application
# (keras.applications' constructor and its arguments, for the tests and the
# weight ports)}.
PRESETS = {
    **{
        f"mobilenet_v2_{round(width * 100):03d}": {
            "version": 2,
            "width": width,
            "params": params,
            "application": ("MobileNetV2", {"alpha": width}),
        }
        for width, params in (
            (0.35, 1_677_128),
            (0.5, 1_968_680),
            (0.75, 2_636_424),
            (1.0, 3_504_872),
            (1.3, 5_386_792),
            (1.4, 6_108_776),
        )
    },
    "mobilenet_v3_small": {
        "version": 3,
        "size": "small",
        "width": 1.0,
        "params": 2_542_856,
        "application": ("MobileNetV3Small", {}),
    },
    "mobilenet_v3_large": {
        "version": 3,
        "size": "large",
        "width": 1.0,
        "params": 5_483_032,
        "application": ("MobileNetV3Large", {}),
    },
    # The papers' minimalistic variants: 3x3 kernels, ReLU, no squeeze-excite.
    "mobilenet_v3_small_minimal": {
        "version": 3,
        "size": "small",
        "width": 1.0,
        "minimalistic": True,
        "params": 2_044_736,
        "application": ("MobileNetV3Small", {"minimalistic": True}),
    },
    "mobilenet_v3_large_minimal": {
        "version": 3,
        "size": "large",
        "width": 1.0,
        "minimalistic": True,
        "params": 3_924_288,
        "application": ("MobileNetV3Large", {"minimalistic": True}),
    },
}
