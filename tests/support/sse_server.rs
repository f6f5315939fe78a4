//! A small HTTP server that writes SSE events with delays between them (filled in by the providers work).
