"""One module per API area; ROUTES is the gateway's dispatch table."""

from . import (
    acls,
    admin,
    api_versions,
    fetch,
    groups,
    leader_epochs,
    list_offsets,
    metadata,
    offsets,
    produce,
    producers,
    records,
    sasl,
    share,
    transactions,
    users,
)

ROUTES = (
    *api_versions.ROUTES,
    *metadata.ROUTES,
    *admin.ROUTES,
    *produce.ROUTES,
    *producers.ROUTES,
    *fetch.ROUTES,
    *list_offsets.ROUTES,
    *leader_epochs.ROUTES,
    *groups.ROUTES,
    *offsets.ROUTES,
    *records.ROUTES,
    *sasl.ROUTES,
    *users.ROUTES,
    *acls.ROUTES,
    *transactions.ROUTES,
    *share.ROUTES,
)
