//! A fake PostHog capture server (filled in by the PostHog sink work).
