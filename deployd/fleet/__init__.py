"""The fleet: the clusters (instances) that poll deployd, what each was served and runs.

`instances` names an instance; `recorder` batches each worker's check-ins and flushes them to the
store from the background refresher; `view` is each worker's in-memory knowledge of instances, the
poll path's only source; `queries` answers the read APIs (`GET /api/v1/fleet`, adoption).
`deployd.fleet.service.Fleet` ties them together for one server process.
"""
