"""Customer records: what the server keeps per license subject, layered over the license claims.

A record (`CustomerRecord`) can assign a channel in place of the license's default one, add
channels the customer may read, pin a release, hold the customer on the release it runs, and
carry notes; the license itself is never re-issued. Records live in the store (`Store.customer`,
`Store.update_customer`); each worker keeps them all in memory (`CustomerBook`, synced by the
background refresher), so the poll path reads a dict and never the store. `layering` holds the
rules the poll path applies; `changes` the operations the HTTP API and the CLI share.
"""

from deployd.customers.book import CustomerBook
from deployd.customers.records import (
    MAX_CUSTOMERS,
    CustomerRecord,
    check_subject,
)

__all__ = ["MAX_CUSTOMERS", "CustomerBook", "CustomerRecord", "check_subject"]
