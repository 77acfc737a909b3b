//! Engine unit tests against the recording fake host.
