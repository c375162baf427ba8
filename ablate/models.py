"""The models of a training cell; each forward returns (features (B, feat_dim), logits (B, num_classes)).

    LeNetPP   the paper's "LeNets++" for 1x28x28 images (MNIST, Fashion-MNIST)
    MLP       a small PReLU network for flat or small inputs (digits 8x8, synthetic vectors)
    build_model(name, input_shape, feat_dim, num_classes): "auto" picks LeNet++ for 28x28 images
"""

import math

from torch import nn

MODELS = ("auto", "lenetpp", "mlp")
LENETPP_INPUT = (28, 28)


def _conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 5x5 convolutions (padding 2) with PReLU, then 2x2 max-pooling: (B, in, H, W) -> (B, out, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 5, padding=2), nn.PReLU(),
        nn.Conv2d(out_channels, out_channels, 5, padding=2), nn.PReLU(),
        nn.MaxPool2d(2),
    )


class LeNetPP(nn.Module):
    """LeNets++ (Wen et al. 2016): stages of 32, 64, 128 channels, fc 1152 -> feat_dim with PReLU, fc -> classes.

    images (B, in_channels, 28, 28) -> features (B, feat_dim), logits (B, num_classes).
    """

    def __init__(self, in_channels: int = 1, feat_dim: int = 2, num_classes: int = 10):
        super().__init__()
        self.stages = nn.Sequential(_conv_stage(in_channels, 32), _conv_stage(32, 64), _conv_stage(64, 128))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3 * 3, feat_dim), nn.PReLU())  # 28->14->7->3
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, images):
        if tuple(images.shape[-2:]) != LENETPP_INPUT:
            raise ValueError(f"LeNet++ expects images (B, C, 28, 28), got shape {tuple(images.shape)}")
        features = self.embed(self.stages(images))  # (B, feat_dim)
        return features, self.classifier(features)  # (B, feat_dim), (B, num_classes)


class MLP(nn.Module):
    """Flatten, hidden Linear+PReLU layers, Linear -> feat_dim with PReLU (the features), Linear -> classes.

    inputs (B, *input_shape) with prod(input_shape) = in_features -> features (B, feat_dim), logits (B, num_classes).
    """

    def __init__(self, in_features: int, feat_dim: int = 2, num_classes: int = 10, hidden: tuple = (256, 128)):
        super().__init__()
        layers, width = [nn.Flatten()], in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.PReLU()]
            width = size
        layers += [nn.Linear(width, feat_dim), nn.PReLU()]
        self.embed = nn.Sequential(*layers)
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, inputs):
        features = self.embed(inputs)  # (B, feat_dim)
        return features, self.classifier(features)  # (B, feat_dim), (B, num_classes)


def resolve_model_name(name: str, input_shape: tuple) -> str:
    """"auto" -> "lenetpp" for (C, 28, 28) images, "mlp" for anything else; other names are checked."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    is_lenetpp_image = len(input_shape) == 3 and tuple(input_shape[1:]) == LENETPP_INPUT
    if name == "auto":
        return "lenetpp" if is_lenetpp_image else "mlp"
    if name == "lenetpp" and not is_lenetpp_image:
        raise ValueError(f"LeNet++ needs (C, 28, 28) images, the dataset gives {tuple(input_shape)}; "
                         "use model 'mlp' or 'auto'")
    return name


def build_model(name: str, input_shape: tuple, feat_dim: int, num_classes: int) -> nn.Module:
    """The model called `name` ("auto", "lenetpp", "mlp") for examples of shape input_shape."""
    if resolve_model_name(name, input_shape) == "lenetpp":
        return LeNetPP(in_channels=input_shape[0], feat_dim=feat_dim, num_classes=num_classes)
    return MLP(math.prod(input_shape), feat_dim=feat_dim, num_classes=num_classes)
