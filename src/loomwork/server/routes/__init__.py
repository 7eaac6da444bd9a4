"""The API's routers, one module per resource family (SPEC §4)."""
