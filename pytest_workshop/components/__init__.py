"""One module per component: connect with timeouts, read state, collect evidence. No pytest here.

Heavy client libraries (docker, aetcd) are imported inside functions so that importing
this package costs nothing; ``pytest --collect-only suites/lab3`` never loads docker-py.
"""
