//! The node's background loops (replication, shard placement): a pass now, then one every
//! `period`, until the node stops.
use std::future::Future;
use std::time::Duration;

/// Runs `pass` at once and then every `period` until `stop` changes.
pub async fn every<F, Fut>(period: Duration, mut stop: tokio::sync::watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        pass().await;
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}
