"""HTTP, one module per page family. Views translate requests into actions (writes) and
selectors (reads); the socket (chat/realtime) does the same for frames."""
