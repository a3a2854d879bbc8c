"""ResNet-18 with torchvision's parameter names, so torchvision/ImageNet weights saved as safetensors
(and LeRobot checkpoints) load key-for-key — without depending on torchvision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.config import PolicyError

Norm = Literal["batch", "frozen", "group"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms (all buffers), as DETR/ACT use for the backbone."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torchvision checkpoints carry BatchNorm's counter, which a frozen norm has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def make_norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "frozen":
        return FrozenBatchNorm2d(channels)
    # Diffusion Policy's choice: 16 channels per group, because batch statistics hurt with small batches.
    return nn.GroupNorm(num_groups=channels // 16, num_channels=channels)


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), make_norm(norm, planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(Checkpointable):
    """ResNet-18 trunk (conv1 … layer4); forward returns the layer4 feature map (B, 512, H/32, W/32)."""

    feature_channels = 512

    def __init__(self, norm: Norm = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (inp, out, stride) in enumerate(widths, start=1):
            setattr(
                self,
                f"layer{i}",
                nn.Sequential(BasicBlock(inp, out, stride, norm), BasicBlock(out, out, 1, norm)),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialization, so training from scratch behaves like LeRobot's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def stages(self) -> list[nn.Module]:
        """The trunk's children in torchvision order (conv1, bn1, relu, maxpool, layer1..layer4)."""
        return [
            self.conv1,
            self.bn1,
            self.relu,
            self.maxpool,
            self.layer1,
            self.layer2,
            self.layer3,
            self.layer4,
        ]

    def forward(self, x: Tensor) -> Tensor:
        stages = self.stages()
        x = self.run(run_stem, stages[:4], x)  # the stem as one block: its ReLU works in place
        for stage in stages[4:]:
            x = self.run(stage, x)
        return x


def run_stem(stem: list[nn.Module], x: Tensor) -> Tensor:
    """conv1 -> bn1 -> relu -> maxpool; its full-resolution activations are the largest of the network."""
    for module in stem:
        x = module(x)
    return x


def load_backbone_weights(module: nn.Module, weights: str) -> None:
    """Load torchvision-named ResNet-18 weights (e.g. ImageNet) from a .safetensors file into `module`."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PolicyError(
            f"pretrained_backbone_weights={weights!r}: no such file. Apprentice never downloads or unpickles "
            "weights: convert torchvision's resnet18 state_dict to safetensors once "
            "(`safetensors.torch.save_file(resnet18(weights=...).state_dict(), 'resnet18.safetensors')`) and "
            "pass that path."
        )
    from safetensors.torch import load_file

    state = {k: v for k, v in load_file(str(path)).items() if not k.startswith("fc.")}
    if isinstance(module, nn.Sequential):  # Diffusion's trunk is indexed like torchvision's children
        order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        state = {f"{order.index(k.split('.')[0])}.{k.split('.', 1)[1]}": v for k, v in state.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("num_batches_tracked")]:
        raise PolicyError(
            f"{path}: not a torchvision ResNet-18 state dict (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]})"
        )
