"""Print the gateway's OpenAPI document: `python -m leadbus.producers.gateway.openapi > docs/gateway-openapi.json`."""

from __future__ import annotations

import json
import sys

from leadbus.producers.gateway.app import openapi_document

if __name__ == "__main__":
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n")
