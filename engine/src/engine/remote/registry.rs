//! The client registry on the cluster: one record every node reads,
//! changed with the compare-and-set accounts use.

use crate::client::Client;
use crate::cluster::slot::{Change, Outcome, Snapshot};
use crate::error::Result;
use crate::store::codec::{decode_client, encode_client};

use super::{RECORD_V1, Remote, push_part, split_parts};

impl Remote {
    /// The registry of clients and its version (0: none yet).
    pub(in crate::engine) fn clients(&self) -> Result<(u64, Vec<Client>)> {
        let key = self.cluster.keys().clients();
        let snapshot: Snapshot =
            self.run(|cluster| async move { cluster.load(&key, &[]).await })?;
        let clients = match &snapshot.record {
            Some(bytes) => decode_registry(bytes)?,
            None => Vec::new(),
        };
        Ok((snapshot.version, clients))
    }

    /// Writes the registry `clients` if its version is still `version`.
    pub(in crate::engine) fn store_clients(
        &self,
        version: u64,
        clients: &[Client],
    ) -> Result<Outcome> {
        let key = self.cluster.keys().clients();
        let change = Change::account(encode_registry(clients));
        let outcome = self
            .run(|cluster| async move { cluster.compare_and_set(&key, version, &change).await });
        if !matches!(outcome, Ok(Outcome::Conflict(_))) {
            self.note_change(&outcome);
        }
        outcome
    }
}

/// The registry of clients: a version byte, then each client's record
/// (the store's versioned encoding) as a part.
fn encode_registry(clients: &[Client]) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    for client in clients {
        push_part(&mut out, &encode_client(client));
    }
    out
}

fn decode_registry(bytes: &[u8]) -> Result<Vec<Client>> {
    split_parts(bytes, "the cluster's client registry")?
        .into_iter()
        .map(decode_client)
        .collect()
}
