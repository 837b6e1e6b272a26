"""The registered GoogLeNet. No pretrained weights (`WEIGHTS` is empty)."""

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"

PRESETS = {
    # With batch norm and true 5x5 convolutions; torchvision's 6,624,904 uses
    # 3x3 convolutions in the "5x5" branch.
    "googlenet": {"params": 7_005_832, "input_size": 224, "dropout": 0.4},
}

WEIGHTS = ()
