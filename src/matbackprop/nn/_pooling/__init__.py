"""Second-order (O2P / DeepO2P) region pooling: options, the two exact routes, the layer.

A private package: :mod:`matbackprop.nn` exports the layer and its options,
:mod:`matbackprop.nn.functional` the function.

- :mod:`._options` -- :class:`PoolingOptions` (written once, shared by layer and function);
- :mod:`._regions` -- input checks, weighted rows of each region, grouping, route planning;
- :mod:`._gram` -- the scalar functions of the low-rank (Gram) identity;
- :mod:`._functional` -- :func:`second_order_pooling`;
- :mod:`._module` -- :class:`SecondOrderPooling`.
"""
