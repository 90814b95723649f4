//! JSON shapes of requests and responses, and their conversion to engine
//! types: `object.rs` (a JSON object, and only one), `bodies.rs` (request
//! bodies as sent), `parse.rs` (their conversion, each error naming its
//! field), `out.rs` (answers).

mod bodies;
mod object;
mod out;
mod parse;

pub use bodies::*;
pub use object::{NoInput, Object};
pub use out::*;
pub use parse::*;
