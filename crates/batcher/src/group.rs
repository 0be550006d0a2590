//! Group commit: callers hand in one item each and wait for its outcome; a task sends whatever
//! is waiting, up to a call's limit, as one batch call (SNS PublishBatch, SQS
//! DeleteMessageBatch), a few calls at once. Nothing waits for company: a lone item goes alone
//! at once, and while calls are in flight the next batch fills by itself, so with many small
//! invocations (one file each) one call serves up to ten of them.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

type Waiting<T> = (T, oneshot::Sender<Result<(), String>>);

pub struct GroupCommit<T> {
    tx: mpsc::UnboundedSender<Waiting<T>>,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// `call` sends one batch of at most `max_batch` items and returns each item's outcome, in
    /// order; at most `in_flight` calls run at once.
    pub fn spawn<F, Fut>(max_batch: usize, in_flight: usize, call: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), String>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiting<T>>();
        let call = Arc::new(call);
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                // Everything that arrived while waiting for a free call goes in this one.
                let mut batch = vec![first];
                while batch.len() < max_batch.max(1) {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let call = call.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let n = items.len();
                    let mut outcomes = call(items).await;
                    outcomes.resize_with(n, || Err("no outcome for this item".into()));
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                    drop(permit);
                });
            }
        });
        Self { tx }
    }

    /// Hands in `item` and waits until the batch that carried it was sent.
    pub async fn submit(&self, item: T) -> Result<(), String> {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send((item, reply))
            .map_err(|_| "the batching task stopped".to_owned())?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the batch call was dropped".into()))
    }
}

/// An entry a batch call refused, as [`outcomes`] takes it: its id and why.
pub fn refused(id: &str, code: &str, message: Option<&str>) -> (String, String) {
    (
        id.to_owned(),
        format!("{code}: {}", message.unwrap_or("refused")),
    )
}

/// Each of `n` items' outcome from a batch call's answer: every item fails with the call's error,
/// or only the entries the answer lists as failed (their ids are their indices in the call).
pub fn outcomes(
    n: usize,
    answer: Result<Vec<(String, String)>, String>,
) -> Vec<Result<(), String>> {
    match answer {
        Ok(failed) => {
            let mut outcomes = vec![Ok(()); n];
            for (id, reason) in failed {
                if let Some(slot) = id.parse::<usize>().ok().and_then(|i| outcomes.get_mut(i)) {
                    *slot = Err(reason);
                }
            }
            outcomes
        }
        Err(reason) => vec![Err(reason); n],
    }
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// The entries a batch call lists as failed fail alone, by their index; a failed call fails
    /// every entry; an id that names no entry changes nothing.
    #[test]
    fn a_batch_answer_fails_exactly_the_entries_it_names() {
        let failed = vec![
            ("2".to_owned(), "InternalError: busy".to_owned()),
            ("9".to_owned(), "no such entry".to_owned()),
        ];
        assert_eq!(
            outcomes(3, Ok(failed)),
            [Ok(()), Ok(()), Err("InternalError: busy".to_owned())]
        );
        assert_eq!(
            outcomes(2, Err("timed out".into())),
            [Err("timed out".to_owned()), Err("timed out".to_owned())]
        );
    }

    /// 40 callers at once against calls that take 20 ms, two at a time: they share calls of up
    /// to ten, each gets its own item's outcome (item 7's failure reaches caller 7 only), and a
    /// lone caller later is sent at once, alone.
    #[tokio::test]
    async fn concurrent_callers_share_calls_and_get_their_own_outcome() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let group = GroupCommit::spawn(10, 2, {
            let sizes = sizes.clone();
            move |items: Vec<u32>| {
                sizes.lock().unwrap().push(items.len());
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    items
                        .into_iter()
                        .map(|i| {
                            if i == 7 {
                                Err(format!("item {i} refused"))
                            } else {
                                Ok(())
                            }
                        })
                        .collect()
                }
            }
        });
        let outcomes = futures::future::join_all((0..40u32).map(|i| {
            let group = group.clone();
            async move { (i, group.submit(i).await) }
        }))
        .await;
        for (i, outcome) in outcomes {
            if i == 7 {
                assert_eq!(outcome, Err("item 7 refused".into()));
            } else {
                assert_eq!(outcome, Ok(()), "item {i}");
            }
        }
        let first = std::mem::take(&mut *sizes.lock().unwrap());
        assert_eq!(first.iter().sum::<usize>(), 40);
        assert!(first.iter().all(|&n| n <= 10), "{first:?}");
        assert!(
            first.len() <= 6,
            "40 items in {} calls: {first:?}",
            first.len()
        );

        let started = std::time::Instant::now();
        assert_eq!(group.submit(1).await, Ok(()));
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(sizes.lock().unwrap().as_slice(), [1]);
    }
}
