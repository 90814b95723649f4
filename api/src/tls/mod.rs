//! TLS on the listeners: the server's certificate and key, the client
//! certificates it verifies and the otpd clients they name, and reloading
//! the files without a restart.

mod files;
mod identity;
mod reload;

pub(crate) use files::certificates;
pub use identity::ClientCertificate;
pub use reload::{Hangup, Tls};
