"""The pass registry: one literal table, name → class. Importing a pass module registers nothing."""

from __future__ import annotations

from surgery.errors import UnknownNameError
from surgery.pass_infra import Pass

from .adaptive_pool_to_fixed import AdaptivePoolToFixed
from .align_channels import AlignChannels
from .avgpool_split import AvgPoolSplit
from .bn_to_mul_add import BnToMulAdd
from .cast_int64_to_int32 import CastInt64ToInt32
from .conv1d_to_conv2d import Conv1dToConv2d
from .convert_opset import ConvertOpset
from .eliminate_dead_code import EliminateDeadCode
from .empty_slice_fix import EmptySliceFix
from .fix_shapes import FixShapes
from .fold_slice_into_conv import FoldSliceIntoConv
from .fuse_bn_into_conv import FuseBnIntoConv
from .gather_to_split import GatherToSplit
from .merge_casts import MergeCasts
from .merge_concats import MergeConcats
from .merge_slices import MergeSlices
from .output_dtype import OutputDtype
from .prune_outputs import PruneOutputs
from .quantize_int8 import QuantizeInt8
from .reflect_pad_to_slices import ReflectPadToSlices
from .resize_nearest import ResizeNearest
from .simplify import Simplify
from .slice_to_split import SliceToSplit
from .split_large_kernel_conv import SplitLargeKernelConv
from .topk_fix import TopkFix
from .truncate import Truncate

PASSES: dict[str, type[Pass]] = {
    "eliminate_dead_code": EliminateDeadCode,
    "prune_outputs": PruneOutputs,
    "truncate": Truncate,
    "resize_nearest": ResizeNearest,
    "simplify": Simplify,
    "fix_shapes": FixShapes,
    "quantize_int8": QuantizeInt8,
    # accelerator passes (issue 13): exact ones first, then those that change outputs on purpose
    "avgpool_split": AvgPoolSplit,
    "fuse_bn_into_conv": FuseBnIntoConv,
    "split_large_kernel_conv": SplitLargeKernelConv,
    "convert_opset": ConvertOpset,
    "align_channels": AlignChannels,
    "conv1d_to_conv2d": Conv1dToConv2d,
    "merge_slices": MergeSlices,
    "merge_concats": MergeConcats,
    "merge_casts": MergeCasts,
    "cast_int64_to_int32": CastInt64ToInt32,
    "gather_to_split": GatherToSplit,
    "slice_to_split": SliceToSplit,
    "fold_slice_into_conv": FoldSliceIntoConv,
    "bn_to_mul_add": BnToMulAdd,
    "reflect_pad_to_slices": ReflectPadToSlices,
    "adaptive_pool_to_fixed": AdaptivePoolToFixed,
    "output_dtype": OutputDtype,
    "topk_fix": TopkFix,
    "empty_slice_fix": EmptySliceFix,
}


def get_pass(name: str) -> type[Pass]:
    """The pass class registered under ``name``; UnknownNameError (with a did-you-mean) otherwise."""
    try:
        return PASSES[name]
    except KeyError:
        raise UnknownNameError("pass", name, PASSES) from None


def make_pass(name: str, options: dict[str, str] | None = None) -> Pass:
    """Build a pass from its name and options given as strings (as on the command line)."""
    return get_pass(name).from_strings(options or {})


__all__ = ["PASSES", "AdaptivePoolToFixed", "AlignChannels", "AvgPoolSplit", "ConvertOpset", "EliminateDeadCode",
           "FixShapes", "FuseBnIntoConv", "OutputDtype", "PruneOutputs", "QuantizeInt8", "ResizeNearest", "Simplify",
           "SplitLargeKernelConv", "Truncate", "get_pass", "make_pass"]
