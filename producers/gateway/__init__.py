"""The agency edge: an HTTPS/JSON gateway in front of the publisher SDK (DESIGN §7, issue 13)."""

from leadbus.producers.gateway.app import Gateway, GatewayConfig, create_app, openapi_document

__all__ = ["Gateway", "GatewayConfig", "create_app", "openapi_document"]
