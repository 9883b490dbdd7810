"""Breach detection and response: canary records, bulk-access alarms over the data-access trail,
findings pushed to sinks, containment of a principal or recipient, incident reports and
checkpoint witnesses. Plain Python; the faces (API, CLI, middleware step) live in `api`, `cli`
and `containment`."""
