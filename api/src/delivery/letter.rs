//! Letters as files in a spool directory that a print house collects.
//!
//! Each letter is written to a temporary name, synced, then renamed to
//! `<message id>.txt`, so the collector never sees half a letter; the id
//! makes a retried write replace, not duplicate, the letter.

use std::io::Write;
use std::path::PathBuf;

use engine::{Outgoing, SendResult};

use super::{Channel, Rendered, SendFuture};

pub(super) struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub(super) fn new(dir: &str) -> Result<Self, String> {
        if dir.is_empty() {
            return Err("delivery.letter.spool_dir must be set when mode = \"spool\"".into());
        }
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("delivery.letter.spool_dir {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }
}

impl Channel for Spool {
    fn name(&self) -> &'static str {
        "letter-spool"
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        let dir = self.dir.clone();
        let name = format!("{}.txt", message.id);
        let letter = format!("{}\n\n{}", message.destination, rendered.letter);
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || {
                let temporary = dir.join(format!(".{name}.tmp"));
                let mut file = std::fs::File::create(&temporary)?;
                file.write_all(letter.as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&temporary, dir.join(&name))
            })
            .await;
            match written {
                Ok(Ok(())) => SendResult::Sent,
                Ok(Err(e)) => SendResult::Retry {
                    after: None,
                    reason: format!("cannot write the letter: {e}"),
                },
                Err(e) => SendResult::Retry {
                    after: None,
                    reason: format!("letter writer failed: {e}"),
                },
            }
        })
    }
}
