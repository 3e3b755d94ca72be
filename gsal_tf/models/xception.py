"""The modified aligned Xception backbone of DeepLabv3+ (Chen et al., ECCV 2018, Sec. 3.2).

Differences from the classification Xception of keras.applications: every max-pooling is
replaced by a strided depthwise-separable convolution, batch norm follows both the depthwise and
the pointwise half of every separable convolution, the middle flow has a configurable number of
blocks (16 = Xception-65, 8 = Xception-41) and the network can trade its last strides for atrous
rates so that the features leave at output stride 16 or 8.

Structure (channels at ``width=1``; ``s`` = stride of the last separable conv of the block)::

    entry_flow_conv1      3×3 conv 32, s2        entry_flow_conv2    3×3 conv 64
    entry_flow_block1     sepconv 128,128,128 s2 + 1×1 conv shortcut
    entry_flow_block2     sepconv 256,256,256 s2 + 1×1 conv shortcut
    entry_flow_block3     sepconv 728,728,728 s2 + 1×1 conv shortcut
    middle_flow_block{k}  sepconv 728,728,728    + identity shortcut,  k = 1..middle_blocks
    exit_flow_block1      sepconv 728,1024,1024 s2 + 1×1 conv shortcut
    exit_flow_block2      sepconv 1536,1536,2048, no shortcut, ReLU inside the separable convs

Blocks 1-3 of the entry, the middle and exit block 1 are pre-activation: a ReLU
(``{block}_sepconv{j}_preact``) precedes each linear separable convolution. Once the running
stride reaches ``output_stride``, later strides become 1 and the atrous rate of the following
blocks doubles instead (DeepLab's ``stack_blocks_dense``): at output stride 16 exit block 1 is
unstrided and exit block 2 uses rate 2; at 8 entry block 3 is unstrided, the middle flow and
exit block 1 use rate 2 and exit block 2 rate 4.

Layer names (see :mod:`gsal_tf.models.layers` for the suffixes of one conv)::

    entry_flow_conv{1,2}[_pad|_bn|_relu]
    {flow}_block{b}_sepconv{j}_preact                      pre-activation ReLU (j = 1..3)
    {flow}_block{b}_sepconv{j}[_pad]_depthwise[_bn]        flow in entry_flow, middle_flow,
    {flow}_block{b}_sepconv{j}_pointwise[_bn]              exit_flow
    {flow}_block{b}_sepconv{j}_{depthwise,pointwise}_relu  exit_flow_block2 only
    {flow}_block{b}_shortcut[_bn], {flow}_block{b}_add

They map one-to-one onto DeepLab's TF checkpoints: ``entry_flow/conv1_{1,2}`` ↔
``entry_flow_conv{1,2}``, ``entry_flow/block1/unit_1/xception_module/separable_conv1_depthwise``
↔ ``entry_flow_block1_sepconv1_depthwise`` (``.../shortcut`` ↔ ``..._shortcut``), and
``middle_flow/block1/unit_{k}/...`` ↔ ``middle_flow_block{k}_...``.
"""

from __future__ import annotations

import keras

from gsal_tf.models.layers import StrideSchedule, conv_bn, make_divisible, separable_conv_bn

__all__ = ["aligned_xception"]

# (name, channels of the three separable convs, nominal stride, shortcut, ReLU inside sepconvs)
_ENTRY_BLOCKS = (
    ("entry_flow_block1", (128, 128, 128), 2, "conv", False),
    ("entry_flow_block2", (256, 256, 256), 2, "conv", False),
    ("entry_flow_block3", (728, 728, 728), 2, "conv", False),
)
_MIDDLE_CHANNELS = (728, 728, 728)
_EXIT_BLOCKS = (
    ("exit_flow_block1", (728, 1024, 1024), 2, "conv", False),
    ("exit_flow_block2", (1536, 1536, 2048), 1, "none", True),
)


def _xception_block(x, channels, name, *, stride, rate, shortcut, relu_inside):
    """One Xception module: three separable convs (the last one strided) plus a shortcut.

    Returns ``(output, second_sepconv_output)``; the latter is DeepLab's low-level feature.
    """
    residual = x
    second = None
    for j, filters in enumerate(channels, start=1):
        prefix = f"{name}_sepconv{j}"
        if not relu_inside:
            residual = keras.layers.ReLU(name=f"{prefix}_preact")(residual)
        residual = separable_conv_bn(residual, filters, prefix, strides=stride if j == 3 else 1,
                                     rate=rate, relu_inside=relu_inside)
        if j == 2:
            second = residual
    if shortcut == "conv":
        skip = conv_bn(x, channels[-1], f"{name}_shortcut", strides=stride, relu=False)
        residual = keras.layers.Add(name=f"{name}_add")([residual, skip])
    elif shortcut == "sum":
        residual = keras.layers.Add(name=f"{name}_add")([residual, x])
    return residual, second


def aligned_xception(x, *, width: float = 1.0, middle_blocks: int = 16, output_stride: int = 16,
                     low_level_stride: int = 4):
    """Build the aligned Xception on tensor ``x`` (N, H, W, C), scaled to [-1, 1].

    Parameters
    ----------
    x : keras tensor
        Input images, shape (N, H, W, C) with any C ≥ 1.
    width : float, default 1.0
        Channel multiplier; every channel count becomes ``make_divisible(c * width, 8)``.
    middle_blocks : int, default 16
        Number of middle-flow blocks (16 = Xception-65, 8 = Xception-41).
    output_stride : {8, 16}, default 16
        Stride of the returned high-level features (atrous convolutions beyond it).
    low_level_stride : {2, 4}, default 4
        Stride of the returned low-level features: the second separable conv of entry block 1
        (stride 2) or entry block 2 (stride 4), as in DeepLab.

    Returns
    -------
    features, low_level : keras tensors
        (N, H/output_stride, W/output_stride, 2048·width) and
        (N, H/low_level_stride, W/low_level_stride, 128·width or 256·width).
    """
    def ch(c):
        return make_divisible(c * width)

    x = conv_bn(x, ch(32), "entry_flow_conv1", kernel_size=3, strides=2)
    x = conv_bn(x, ch(64), "entry_flow_conv2", kernel_size=3)
    schedule = StrideSchedule(output_stride, current_stride=2)
    low_level_block = {2: "entry_flow_block1", 4: "entry_flow_block2"}[low_level_stride]
    low_level = None

    blocks = list(_ENTRY_BLOCKS)
    blocks += [(f"middle_flow_block{k}", _MIDDLE_CHANNELS, 1, "sum", False)
               for k in range(1, middle_blocks + 1)]
    blocks += list(_EXIT_BLOCKS)
    for name, channels, nominal_stride, shortcut, relu_inside in blocks:
        stride, rate = schedule.next(nominal_stride)
        x, second = _xception_block(x, [ch(c) for c in channels], name, stride=stride, rate=rate,
                                    shortcut=shortcut, relu_inside=relu_inside)
        if name == low_level_block:
            low_level = second
    return x, low_level
