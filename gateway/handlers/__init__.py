"""One module per API area; ROUTES is the gateway's dispatch table."""

from . import admin, api_versions, fetch, list_offsets, metadata, produce

ROUTES = (
    *api_versions.ROUTES,
    *metadata.ROUTES,
    *admin.ROUTES,
    *produce.ROUTES,
    *fetch.ROUTES,
    *list_offsets.ROUTES,
)
