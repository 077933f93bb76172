"""The models of this product, one folder each (``product.inference.registry`` finds them).

``<model>/spec.py`` is the light half the web imports (``SPEC``: input, form, display, result
schema); ``<model>/runner.py`` the heavy half only the runner imports (load, run a batch);
``<model>/inputs.html`` and ``result.html`` show a request. Keep this file and each folder's
``__init__.py`` free of imports: the web imports ``spec`` modules through them.
"""
