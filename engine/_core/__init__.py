"""Compiled core: the order simulator (``broker``), the bar loops (``loop``) and
rolling-window kernels (``kernels``). Pure data in, arrays out: nothing here
knows of files, polars or the command line."""
