"""Development-only key material.

Committed on purpose so that `cqrs dev` and the tests work with no setup. The
`prod` profile refuses to start with any of it (see `profile_rules`).
"""

from typing import Final

DEV_JWT_PRIVATE_KEY: Final = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAyrsxnFqU9jbKaBQRwLtz7oilKOhRlzXduZJmzHKNRE
-----END PRIVATE KEY-----
"""

# Signs the query API's pagination cursors in dev and test.
DEV_CURSOR_SECRET: Final = "dev-cursor-secret-not-for-production-3f9a1c"  # noqa: S105 - dev only
