"""``gsal app``: a local explorer in the browser (imported only by that command and its tests).

A stdlib HTTP server (:mod:`gsal_tf.app.server`, bound to 127.0.0.1) serves one static page
(``index.html``, vanilla JavaScript, nothing fetched from the internet) and a small JSON API.
Every number the page shows comes from the library's picture pipeline
(:mod:`gsal_tf.pictures`), the same calls ``gsal explain`` makes.
"""

from gsal_tf.app.server import App, serve

__all__ = ["App", "serve"]
