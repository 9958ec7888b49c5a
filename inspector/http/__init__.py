"""The HTTP edge (JSON API, Server-Sent Events) beside the gRPC edge, in the same process."""
