//! The signal a coordinator emits from `post_commit`: this node's chain changed through that zome.
//! The dashboard listens for it (the zome name comes with every app signal) and re-reads what it
//! shows, instead of polling. Only the node's own commits are announced; what other nodes write
//! shows up on the dashboard's next read.
use hdk::prelude::*;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeSignal {
    /// One commit of `actions` actions.
    Committed { actions: u32 },
}

/// Emits `Committed` for the actions a commit just wrote. A signal nobody receives is no error.
pub fn announce(committed: &[SignedActionHashed]) {
    let actions = u32::try_from(committed.len()).unwrap_or(u32::MAX);
    if let Err(e) = emit_signal(ChangeSignal::Committed { actions }) {
        debug!("the change signal was not emitted: {e:?}");
    }
}
