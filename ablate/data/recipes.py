"""The training recipe of each dataset: the options a cell takes from its dataset unless they are given.

A recipe that trains on one dataset can diverge on another: digits' (lr 0.05, momentum 0.9, batch 64, sum/B) makes
every Fashion-MNIST cell diverge, softmax alone included. Each entry is the recipe measured to train on its dataset.
"""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
    """The defaults of a cell on one dataset, by CellConfig field name. lr_step 0: a constant learning rate."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    lr_step: int
    lr_gamma: float
    convention: str

    def options(self) -> dict:
        return asdict(self)


# digits: a 2-D-feature MLP trains in about a second a cell on one CPU core.
_SMALL = Recipe(model="mlp", epochs=15, batch_size=64, lr=0.05, lr_step=0, lr_gamma=0.5, convention="mean")
RECIPES = {
    "digits": _SMALL,
    "synthetic": _SMALL,
    # 28x28 images: LeNet++ (the paper's MNIST model), about a minute an epoch of 4,000 images on 2 CPU cores.
    "mnist5k": Recipe(model="lenetpp", epochs=15, batch_size=64, lr=0.05, lr_step=0, lr_gamma=0.5, convention="mean"),
    # The Caffe layer's convention (sum/2B), a tenth of digits' step halved every 4 epochs, batch 128; the MLP with
    # 2-D features (LeNet++ trains the 60,000 images at about 50 a second a core: ~20 min an epoch on 2 cores).
    "fashion-mnist": Recipe(model="mlp", epochs=10, batch_size=128, lr=0.01, lr_step=4, lr_gamma=0.5,
                            convention="half_mean"),
}

def recipe(dataset: str) -> Recipe:
    try:
        return RECIPES[dataset]
    except KeyError:
        raise ValueError(f"no recipe for dataset {dataset!r}; expected one of {', '.join(RECIPES)}") from None
