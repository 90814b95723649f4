//! JSON shapes of requests and responses, and their conversion to engine
//! types: `object.rs` (a JSON object, and only one), `bodies.rs` (request
//! bodies as sent), `parse.rs` (their conversion, each error naming its
//! field), `out.rs` (answers about accounts, challenges and clients), `admin_out.rs`
//! (the operators' answers and small acknowledgements).

mod admin_out;
mod bodies;
mod object;
mod out;
mod parse;

pub use admin_out::*;
pub use bodies::*;
pub use object::{NoInput, Object};
pub use out::*;
pub use parse::*;
