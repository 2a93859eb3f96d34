"""A small but realistic application for the bundle's end-to-end tests.

It has its own settings registry (database URL, API URL, a CSRF switch), an ASGI app factory
serving rows from a sqlite database, a client that reads the API-URL setting, and a job whose
clock is pendulum's.
"""
