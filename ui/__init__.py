"""The query page: `duckfleet ui`, a stateless HTTP process reading etcd.

render.py   pure: the fleet's records (control/fleet_snapshot.py) -> HTML pages
access.py   who is looking: HTTP Basic logins checked like the front doors',
            what they may see and do, the cancel form's token
server.py   the HTTP server (standard library): routes, reads, the cancel
command.py  the `duckfleet ui` command
"""
