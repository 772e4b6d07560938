"""Python clients and the ``qpumesh`` command line."""
