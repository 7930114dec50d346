"""Start-up and exit without the garbage collector's passes over the modules: `main` turns it
off, each command turns it back on once it has imported the modules it needs
(`heavy_imports`), and `main` keeps everything out of the collections at exit (`before_exit`).

Importing them (aiohttp, the wire models, the commands' building blocks) makes about a hundred
thousand objects, all kept until the process ends; with the collector on, it walks them again
and again while they are made: about 50 ms of CPU before a command's first request, and 30 ms
more in the collections after it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def start_up() -> None:
    """No collection until the command's modules are imported (`heavy_imports`)."""
    gc.disable()


@contextmanager
def heavy_imports() -> Iterator[None]:
    """Import what the block imports, then turn the collector back on with every object made
    so far kept out of its passes (`gc.freeze`): the command's own objects are collected as
    usual. Where `start_up` did not turn it off (the command invoked from Python, as the tests
    do), the collector is left as it is."""
    if gc.isenabled():
        yield
        return
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def before_exit() -> None:
    """Keep every object left out of the collections Python makes at exit (`gc.freeze`):
    they walk all of them, the modules' and the report's, several times over, a tenth of a
    second of CPU after the report is out, for memory that ends with the process anyway.
    Nothing the toolkit writes waits for a collection: files and connections are closed where
    they are used."""
    gc.freeze()
