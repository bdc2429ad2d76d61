//! `lookout test-rules`: rule unit tests.
