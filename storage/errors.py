"""Errors raised by the storage layer.

StorageError
 +-- ConfigurationError     a DATABASE_URL or path we cannot use
 +-- SchemaError            the database schema is missing, too new, or failed to upgrade
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class ConfigurationError(StorageError):
    """The database settings cannot be used; the message says how to fix them."""


class SchemaError(StorageError):
    """The database schema is not what this release expects."""
