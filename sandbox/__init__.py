"""Offline, protocol-faithful Cloud Assistant (ECS OpenAPI 2014-05-26) endpoint with real instances."""

__version__ = "0.1.0"
