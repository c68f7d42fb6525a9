"""``molfm serve``: the models over HTTP (JSON under ``/v1``) and a page at ``/``.

* :mod:`.config` -- :class:`~.config.ServeConfig`, the flags of ``molfm serve`` and its limits;
* :mod:`.schemas` -- the requests and responses (pydantic; OpenAPI at ``/openapi.json``);
* :mod:`.workers` -- one inference worker per model: a bounded queue and micro-batching;
* :mod:`.models` -- what each loaded model serves, through the CLI's library functions;
* :mod:`.routes`, :mod:`.app` -- the routes, errors, limits, API key and the page
  (:func:`~.app.create_app`, :func:`~.app.serve`);
* ``web/`` -- the page.

The server sits between ``cli`` and the systems (``pyproject.toml``'s layers); fastapi and
uvicorn come with the ``serve`` extra. See docs/serve.md.
"""
