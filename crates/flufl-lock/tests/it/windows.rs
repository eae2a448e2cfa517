//! Windows-only tests (written by the Windows backend work).
