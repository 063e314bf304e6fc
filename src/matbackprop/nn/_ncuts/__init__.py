"""Normalized cuts as a trainable layer (DeepNCuts), its loss, and decoding.

After Ionescu, Vantzos & Sminchisescu (ICCV 2015, Sec. 5), Bach & Jordan (NIPS 2003 / JMLR
2006) and Shi & Malik (TPAMI 2000). Built on :mod:`matbackprop.linalg`. A private package: the
public names are exported by :mod:`matbackprop.nn` (module, options, results) and
:mod:`matbackprop.nn.functional` (functions).

Layer: node features ``F (B, m, d)`` → ``W = FFᵀ`` (non-negative) → ``M = D^-½ W D^-½`` →
top-``k`` eigenvectors ``Z``.

- :mod:`._options` -- :class:`NCutsOptions`; :mod:`._layer` -- :func:`normalized_cuts`
  (low-rank ``O(md²)`` route by default, dense route for comparison),
  :func:`normalized_cuts_affinity` (a given ``W``); :mod:`._module` -- :class:`NormalizedCuts`;
  :mod:`._affinity` -- :func:`gaussian_affinity` (Shi–Malik baseline), degrees;
  :mod:`._result` -- :class:`NCutsResult`, :class:`EigengapWarning`.
- :mod:`._loss` -- :func:`ncuts_loss` (``½‖ZZᵀ − Π(D^½E)‖²`` in ``O(mk)``),
  :func:`ncuts_loss_dense` (reference), :func:`segment_counts`.
- :mod:`._decode`, :mod:`._kmeans` -- :func:`spectral_discretize`, :func:`decode_labels`,
  :func:`ncuts_hierarchy`, :func:`lift_labels`, :func:`kmeans`.
"""
