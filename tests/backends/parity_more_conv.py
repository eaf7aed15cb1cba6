"""Parity cases for conv1d, grouped conv2d, depthwise_conv2d and conv2d_transpose (appended to
``parity.CASES``, which imports this module)."""
from parity import CASES, Case, f32, ins

import webtensor as wt

CASES.extend([
    Case("conv1d/same_stride2", lambda x, w: wt.conv1d(x, w, 2, "same"), ins(f32(2, 9, 3), f32(3, 3, 4))),
    Case("conv1d/causal_dilated_ncw", lambda x, w: wt.conv1d(x, w, 1, (4, 0), data_format="NCW", dilations=2),
         ins(f32(1, 2, 10), f32(3, 2, 3))),
    Case("conv2d/grouped", lambda x, w: wt.conv2d(x, w, padding="same"), ins(f32(1, 6, 6, 4), f32(3, 3, 2, 6))),
    Case("depthwise_conv2d/same_stride2", lambda x, w: wt.depthwise_conv2d(x, w, 2, "same"),
         ins(f32(2, 7, 7, 3), f32(3, 3, 3, 2))),
    Case("depthwise_conv2d/dilated_nchw", lambda x, w: wt.depthwise_conv2d(x, w, 1, "valid", data_format="NCHW",
                                                                           dilations=2),
         ins(f32(1, 2, 7, 6), f32(2, 2, 2, 1))),
    Case("conv2d_transpose/same_stride2", lambda x, w: wt.conv2d_transpose(x, w, (2, 8, 8, 2), 2),
         ins(f32(2, 4, 4, 3), f32(3, 3, 2, 3))),
    Case("conv2d_transpose/valid_nchw", lambda x, w: wt.conv2d_transpose(x, w, (1, 3, 7, 9), 2, padding="valid",
                                                                         data_format="NCHW"),
         ins(f32(1, 2, 3, 4), f32(3, 3, 3, 2))),
])
