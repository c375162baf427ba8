import pytest
import torch
from torch import nn

from ablate.models import MLP, MODELS, LeNetPP, Model, build_model


def test_lenetpp_is_the_papers_architecture():
    model = LeNetPP(in_channels=1, feat_dim=2, num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (5, 5) and c.padding == (2, 2) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(linear.in_features, linear.out_features) for linear in linears] == [(1152, 2), (2, 10)]
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) == 7  # six convolutions and the feature


def test_lenetpp_returns_features_and_logits():
    model = LeNetPP(feat_dim=3, num_classes=7)
    features, logits = model(torch.randn(4, 1, 28, 28))
    assert features.shape == (4, 3) and logits.shape == (4, 7)
    torch.testing.assert_close(logits, model.classifier(features))
    with pytest.raises(ValueError, match=r"\(B, C, 28, 28\)"):
        model(torch.randn(4, 1, 8, 8))


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (32,)])
def test_mlp_flattens_any_input(input_shape):
    model = MLP(int(torch.tensor(input_shape).prod()), feat_dim=2, num_classes=10)
    features, logits = model(torch.randn(5, *input_shape))
    assert features.shape == (5, 2) and logits.shape == (5, 10)


@pytest.mark.parametrize("name, input_shape, expected", [
    ("auto", (1, 28, 28), LeNetPP), ("auto", (1, 8, 8), MLP), ("auto", (32,), MLP),
    ("mlp", (1, 28, 28), MLP), ("lenetpp", (1, 28, 28), LeNetPP),
])
def test_build_model_picks_by_input_shape(name, input_shape, expected):
    model = build_model(name, input_shape, feat_dim=2, num_classes=10)
    assert type(model) is expected
    features, logits = model(torch.randn(2, *input_shape))
    assert features.shape == (2, 2) and logits.shape == (2, 10)


def test_build_model_explains_bad_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet'; expected one of " + ", ".join(MODELS.names())):
        build_model("resnet", (1, 28, 28), 2, 10)
    with pytest.raises(ValueError, match=r"model 'lenetpp' needs \(C, 28, 28\) images, the dataset gives \(1, 8, 8\); "
                                         "use one of auto, mlp"):
        build_model("lenetpp", (1, 8, 8), 2, 10)


def test_a_model_builds_or_picks_another():
    with pytest.raises(ValueError, match="either build .* or picks"):
        Model("neither")
    assert MODELS.names() == ("auto", "lenetpp", "mlp")


def test_a_registered_model_is_a_cell_option_and_builds():
    from ablate.train import CellConfig

    linear = Model("linear", build=lambda input_shape, feat_dim, num_classes: MLP(
        int(torch.tensor(input_shape).prod()), feat_dim, num_classes, hidden=()))
    MODELS.register(linear)
    try:
        assert CellConfig(model="linear").model == "linear"
        model = build_model("linear", (1, 8, 8), feat_dim=3, num_classes=10)
        assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [3, 10]
    finally:
        MODELS.unregister("linear")
    with pytest.raises(ValueError, match="unknown model 'linear'; expected one of auto, lenetpp, mlp"):
        CellConfig(model="linear")


@pytest.mark.parametrize("name, input_shape", [("mlp", (1, 8, 8)), ("lenetpp", (1, 28, 28))])
def test_a_batchnorm_embedding_standardizes_each_feature_over_the_training_batch(name, input_shape):
    torch.manual_seed(0)
    plain = build_model(name, input_shape, feat_dim=5, num_classes=3)
    torch.manual_seed(0)
    normed = build_model(name, input_shape, feat_dim=5, num_classes=3, embedding_norm="batchnorm")
    inputs = torch.randn(16, *input_shape)
    features, logits = normed(inputs)  # training mode: the batch's own statistics
    raw, _ = plain(inputs)  # the same weights (the norm layer draws nothing): the features before the norm
    expected = (raw - raw.mean(0)) / torch.sqrt(raw.var(0, unbiased=False) + 1e-5)
    # float32: torch sums the batch statistics in another order than this line (a few ulps of 1e-7 apart)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, normed.classifier(features))
    assert sum(p.numel() for p in normed.parameters()) == sum(p.numel() for p in plain.parameters()) + 2 * 5


def test_an_embedding_norm_needs_a_known_name_and_an_embed_module():
    with pytest.raises(ValueError, match="unknown embedding_norm 'layer'; expected one of none, batchnorm"):
        build_model("mlp", (1, 8, 8), 2, 10, embedding_norm="layer")

    class Bare(nn.Module):
        def forward(self, inputs):
            return inputs, inputs

    MODELS.register(Model("bare", build=lambda input_shape, feat_dim, num_classes: Bare()))
    try:
        assert isinstance(build_model("bare", (4,), 4, 2), Bare)  # without a norm: as registered
        with pytest.raises(ValueError, match="model 'bare' has none; use embedding_norm none"):
            build_model("bare", (4,), 4, 2, embedding_norm="batchnorm")
    finally:
        MODELS.unregister("bare")
