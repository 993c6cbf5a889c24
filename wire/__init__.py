"""The Flight plumbing front doors and workers share, so neither imports the other:

    auth.py          bearer-token middleware, service tokens, TLS for outgoing calls
    status.py        duckfleet errors -> Flight statuses; one log line per call
    edge.py          FlightEdge: the base of every duckfleet Flight server
    tickets.py       self-contained result tickets and prepared-statement handles
    commands.py      google.protobuf.Any in and out; malformed / unsupported requests
    sql_messages.py  the Flight SQL protobuf messages, built without protoc
    flight_messages.py  Flight's own messages pyarrow has no class for (grpcio door)
    poll_handle.py   the descriptor PollFlightInfo answers to poll a query again
    clients.py       one Flight client per location, shared by a process's threads
"""
