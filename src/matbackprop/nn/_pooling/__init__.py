"""Second-order (O2P / DeepO2P) region pooling: options, the two exact routes, the layer.

- :mod:`._options` -- :class:`PoolingOptions` (written once, shared by layer and function);
- :mod:`._regions` -- input checks, weighted rows of each region, grouping, route planning;
- :mod:`._gram` -- the scalar functions of the low-rank (Gram) identity;
- :mod:`._functional` -- :func:`second_order_pooling`;
- :mod:`._module` -- :class:`SecondOrderPooling`.
"""

from ._functional import second_order_pooling
from ._gram import GRAM_NORMALIZATIONS, GramFunction
from ._module import SecondOrderPooling
from ._options import POOLING_NORMALIZATIONS, POOLING_ROUTES, PoolingOptions
from ._regions import plan_routes, support_buckets

__all__ = [
    "GRAM_NORMALIZATIONS",
    "POOLING_NORMALIZATIONS",
    "POOLING_ROUTES",
    "GramFunction",
    "PoolingOptions",
    "SecondOrderPooling",
    "plan_routes",
    "second_order_pooling",
    "support_buckets",
]
