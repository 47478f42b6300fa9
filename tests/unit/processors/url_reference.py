"""The canonical URL as intake formed it before the speed-ups of issue #16, kept as it was: the reference the
fast forms are compared with (tests/unit/processors/test_normalize_url_forms.py, test_first_sight_forms.py).

Its own copy of the tracking-parameter rule, so that a change to the core's is seen as a change, not followed."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from leadbus.identifiers import clean_text

_TRACKING = re.compile(r"^(utm_.*|spm|scm|from|share.*|src|ref|tracking.*|ali_.*|_.*)$", re.IGNORECASE)


def old_canonical_url(url: str) -> str:
    text = clean_text(url)
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in ("www.", "m.", "wap."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query) if not _TRACKING.match(k)))
    return urlunsplit(("https", netloc, parts.path.rstrip("/"), query, ""))
