"""celgate: a policy engine and process-isolated plugin host for AI gateways.

The components live in top-level folders (sdk/, engine/, policies/, codegen/,
conformance/) and are reached through the symlinks in this package.
"""

__version__ = "0.1.0"
