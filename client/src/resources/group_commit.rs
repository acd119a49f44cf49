//! Group commit for one source chain: items that arrive while a write holds the chain queue up, and
//! whoever takes the chain next writes every queued item in one call. Under load a chain write
//! then carries many items instead of one, and nobody waits for more than the write before theirs.
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The queue of items waiting for the chain; `R` is one item's result.
pub struct GroupCommit<T, R> {
    queue: Mutex<Vec<(T, oneshot::Sender<R>)>>,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        Self { queue: Mutex::new(Vec::new()) }
    }
}

impl<T, R> GroupCommit<T, R> {
    /// Queues `item`, takes `chain`, and writes whatever is queued by then (`write` gets the items
    /// in arrival order and returns one result per item, in that order). `None` when `write`
    /// returned fewer results than items, or this item's writer was cancelled: its outcome is unknown
    /// and the caller reads it back.
    pub async fn submit<F, Fut>(&self, chain: &tokio::sync::Mutex<()>, item: T, write: F) -> Option<R>
    where
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        let (sender, mut receiver) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push((item, sender));
        {
            let _chain = chain.lock().await;
            // A writer before us may have taken this item with its batch.
            if let Ok(result) = receiver.try_recv() {
                return Some(result);
            }
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() {
                let (items, senders): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                for (sender, result) in senders.into_iter().zip(write(items).await) {
                    let _ = sender.send(result);
                }
            }
        }
        receiver.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_that_queue_behind_a_write_go_in_one_batch() {
        let group = Arc::new(GroupCommit::<u32, u32>::default());
        let chain = Arc::new(tokio::sync::Mutex::new(()));
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let held = chain.clone().lock_owned().await;
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (group, chain, batches) = (group.clone(), chain.clone(), batches.clone());
                tokio::spawn(async move {
                    group
                        .submit(&chain, i, |items| async move {
                            batches.lock().unwrap().push(items.clone());
                            items.into_iter().map(|i| i * 10).collect()
                        })
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let mut results = vec![];
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(results, vec![Some(0), Some(10), Some(20), Some(30), Some(40)]);
        let batches = batches.lock().unwrap();
        assert_eq!(batches.len(), 1, "all five waited behind one write: {batches:?}");
        assert_eq!(batches[0].len(), 5);
    }

    #[tokio::test]
    async fn a_short_answer_leaves_the_rest_unknown() {
        let group = GroupCommit::<u32, u32>::default();
        let chain = tokio::sync::Mutex::new(());
        let result = group.submit(&chain, 7, |_| async { vec![] }).await;
        assert_eq!(result, None);
    }
}
