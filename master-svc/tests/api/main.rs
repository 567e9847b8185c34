//! Integration tests: each starts a real master on port 0 with a temporary database and talks
//! HTTP to it.

mod helpers;
mod smoke;
