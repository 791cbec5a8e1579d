"""Generated CRI ``runtime.v1`` messages and stubs (scripts/codegen.py; do not edit).

from pycri.api import api_pb2 as cri
"""
