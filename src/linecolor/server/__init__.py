"""The web studio: Flask app factory (:func:`create_app`) served by waitress (:func:`serve`)."""

from linecolor.server.app import create_app, serve

__all__ = ["create_app", "serve"]
