"""Delivery of digests.

``message``: what a digest mail holds, its templates and headers (``content_for``,
``render_digest``, ``build_digest_message``); ``tokens``: the signed "view in browser" link.
Nothing is imported here, so importing one module of the package never loads the others.
"""
