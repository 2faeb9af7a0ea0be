"""Built-in losses on logits ``B, C, *spatial`` and integer targets ``B, 1, *spatial``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medseg.hookspecs import hookimpl
from medseg.specs import LossSpec


def _weights(weight: Sequence[float] | None):
    import torch

    return None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32)


class CrossEntropy:
    """Multi-class cross-entropy taking a ``B, 1, *spatial`` integer target."""

    def __init__(self, weight: Sequence[float] | None = None) -> None:
        import torch

        self.loss = torch.nn.CrossEntropyLoss(weight=_weights(weight))

    def __call__(self, logits, target):
        if self.loss.weight is not None and self.loss.weight.device != logits.device:
            self.loss.weight = self.loss.weight.to(logits.device)
        return self.loss(logits, target[:, 0].long())


def ce(*, num_classes: int, weight: Sequence[float] | None = None) -> Any:
    return CrossEntropy(weight)


def dice(*, num_classes: int, include_background: bool = False, squared_pred: bool = False,
         batch: bool = True) -> Any:
    from monai.losses import DiceLoss

    return DiceLoss(include_background=include_background, to_onehot_y=True, softmax=True,
                    squared_pred=squared_pred, batch=batch)


def iou(*, num_classes: int, include_background: bool = False, batch: bool = True) -> Any:
    from monai.losses import DiceLoss

    return DiceLoss(include_background=include_background, to_onehot_y=True, softmax=True,
                    jaccard=True, batch=batch)


def focal(*, num_classes: int, gamma: float = 2.0, alpha: float | None = None,
          weight: Sequence[float] | None = None) -> Any:
    from monai.losses import FocalLoss

    return FocalLoss(include_background=True, to_onehot_y=True, gamma=gamma, alpha=alpha,
                     weight=weight, use_softmax=True)


def dice_ce(*, num_classes: int, include_background: bool = False, lambda_dice: float = 1.0,
            lambda_ce: float = 1.0, weight: Sequence[float] | None = None,
            batch: bool = True) -> Any:
    from monai.losses import DiceCELoss

    return DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True,
                      lambda_dice=lambda_dice, lambda_ce=lambda_ce, weight=_weights(weight),
                      batch=batch)


def dice_focal(*, num_classes: int, include_background: bool = False, gamma: float = 2.0,
               alpha: float | None = None, weight: Sequence[float] | None = None,
               lambda_dice: float = 1.0, lambda_focal: float = 1.0, batch: bool = True) -> Any:
    """Dice + Focal (Zhu et al. 2019), the default for heavily imbalanced organs."""
    from monai.losses import DiceFocalLoss

    return DiceFocalLoss(include_background=include_background, to_onehot_y=True, softmax=True,
                         gamma=gamma, alpha=alpha, weight=weight, lambda_dice=lambda_dice,
                         lambda_focal=lambda_focal, batch=batch)


@hookimpl
def medseg_register_losses() -> list[LossSpec]:
    return [
        LossSpec("ce", ce, "Cross-entropy (optional class weights)"),
        LossSpec("dice", dice, "Soft Dice (Milletari et al. 2016), softmax"),
        LossSpec("iou", iou, "Soft Jaccard / IoU loss"),
        LossSpec("focal", focal, "Focal loss (Lin et al. 2017)", {"gamma": 2.0}),
        LossSpec("dice_ce", dice_ce, "Dice + cross-entropy (nnU-Net default)"),
        LossSpec("dice_focal", dice_focal, "Dice + Focal for heavily imbalanced classes",
                 {"gamma": 2.0}),
    ]
