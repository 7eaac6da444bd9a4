"""Datasource connectors: each kind behind one small interface, its driver imported only in its module."""

from .base import Connector, ConnectorError, QueryResult

__all__ = ["Connector", "ConnectorError", "QueryResult"]
