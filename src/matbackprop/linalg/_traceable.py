"""Our autograd Functions as ``torch.compile`` can trace them.

Dynamo (torch 2.13) cannot trace a ``torch.autograd.Function`` that defines a forward-mode rule
(``jvp``): it breaks the graph there ("Unsupported custom jvp") and runs the Function eagerly.
The ``jvp`` rules are what ``torch.func.jvp``/``jacfwd``/``hessian`` use, so the Functions keep
them; each module also defines, with :func:`without_jvp`, a twin with the same forward,
``setup_context``, backward and vmap rule but no ``jvp``, and applies the twin while Dynamo
traces (``torch.compiler.is_compiling()``). Dynamo traces the twin into the surrounding graph
and AOT autograd differentiates it with the same backward. Forward-mode AD *inside* a compiled
region is then not available (it raises). The twin is a module-level name because Dynamo can
look up a global class but not a class stored in a dict or an attribute. See docs/compile.md.
"""

from __future__ import annotations

import torch

__all__ = ["without_jvp"]


def without_jvp(function: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """A subclass of ``function`` whose ``jvp`` is ``torch.autograd.Function``'s (undefined)."""
    body = {"jvp": staticmethod(torch.autograd.Function.jvp), "__doc__": function.__doc__}
    return type(f"{function.__name__}Traced", (function,), body)
