//! Support code for the end-to-end tests lives in `api/helpers.rs`.
