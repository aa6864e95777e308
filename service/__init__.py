"""Slipway's online inference service: Flask on gunicorn, Open Inference Protocol (V2) REST.

`app.create_app` builds the WSGI app (one per gunicorn worker), `gunicorn.conf.py` is
the production server configuration and `main.py` the entry point that runs both.
"""
