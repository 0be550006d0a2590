//! Broker confirms, in transaction order. The WAL reader publishes each transaction's changes
//! and hands their confirms here; a transaction's commit LSN is acknowledged only when every
//! change of it and of every transaction before it is confirmed. So the slot never moves past a
//! change the broker does not hold, and never into the middle of a transaction: killed at any
//! point, the component resumes at a transaction boundary and sends the unconfirmed again.

use std::future::Future;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// How the broker answered one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Confirmed,
    /// Refused, or lost with the connection: the change is not known to be held.
    Failed(String),
    /// Confirmed, but routed to no queue (a missing binding): as good as lost.
    Unroutable(String),
}

/// One transaction's publishes (or a chunk of snapshot rows).
pub struct Unit<F> {
    /// What to acknowledge once every publish is confirmed: the commit's end LSN (None for
    /// snapshot rows, which have nothing to acknowledge in the slot).
    pub ack_lsn: Option<u64>,
    pub confirms: Vec<F>,
    /// The transaction's commit time in microseconds since the epoch (0 for snapshot rows),
    /// for the commit-to-confirmed latency.
    pub commit_us: u64,
    /// Told once the unit is confirmed (the end of the snapshot waits on it).
    pub done: Option<oneshot::Sender<()>>,
    /// Held until confirmed: the bound on messages in flight.
    pub permit: Option<OwnedSemaphorePermit>,
}

impl<F> Unit<F> {
    pub fn new(ack_lsn: Option<u64>, confirms: Vec<F>) -> Self {
        Self {
            ack_lsn,
            confirms,
            commit_us: 0,
            done: None,
            permit: None,
        }
    }
}

/// What a confirmed unit reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirmed {
    pub ack_lsn: Option<u64>,
    pub changes: u64,
    pub commit_us: u64,
}

/// Awaits units in order until the channel closes; `on_confirmed` sees each confirmed unit in
/// order (and acknowledges its LSN). Stops at the first publish not confirmed, returning it:
/// nothing from there on is acknowledged.
pub async fn confirm_in_order<F>(
    mut units: mpsc::Receiver<Unit<F>>,
    mut on_confirmed: impl FnMut(Confirmed),
) -> Result<(), Outcome>
where
    F: Future<Output = Outcome>,
{
    while let Some(unit) = units.recv().await {
        let changes = unit.confirms.len() as u64;
        for confirm in unit.confirms {
            match confirm.await {
                Outcome::Confirmed => {}
                failed => return Err(failed),
            }
        }
        on_confirmed(Confirmed {
            ack_lsn: unit.ack_lsn,
            changes,
            commit_us: unit.commit_us,
        });
        if let Some(done) = unit.done {
            let _ = done.send(());
        }
        drop(unit.permit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Answer = oneshot::Receiver<Outcome>;

    async fn answered(rx: Answer) -> Outcome {
        rx.await.unwrap_or(Outcome::Failed("dropped".into()))
    }

    /// Two transactions whose confirms arrive out of order: the second's LSN is acknowledged
    /// only after the first is, and the first only once both of its changes are confirmed.
    #[tokio::test]
    async fn acknowledges_in_transaction_order_and_only_whole_transactions() {
        let (tx, rx) = mpsc::channel(8);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let seen = acked.clone();
        let confirmer = tokio::spawn(confirm_in_order(rx, move |c: Confirmed| {
            seen.lock().unwrap().push(c.ack_lsn.unwrap())
        }));
        let mut answers = Vec::new();
        for (lsn, changes) in [(100, 2), (200, 1)] {
            let mut confirms = Vec::new();
            for _ in 0..changes {
                let (a, r) = oneshot::channel();
                answers.push(a);
                confirms.push(answered(r));
            }
            tx.send(Unit::new(Some(lsn), confirms)).await.ok().unwrap();
        }
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        let [first_a, first_b, second] = <[_; 3]>::try_from(answers).ok().unwrap();
        second.send(Outcome::Confirmed).unwrap();
        first_a.send(Outcome::Confirmed).unwrap();
        settle().await;
        assert!(
            acked.lock().unwrap().is_empty(),
            "half a transaction is not acknowledged"
        );
        first_b.send(Outcome::Confirmed).unwrap();
        settle().await;
        assert_eq!(*acked.lock().unwrap(), [100, 200]);
        drop(tx);
        assert_eq!(confirmer.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_refused_change_stops_the_acknowledgements_at_its_transaction() {
        let (tx, rx) = mpsc::channel(8);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let seen = acked.clone();
        let confirmer = tokio::spawn(confirm_in_order(rx, move |c: Confirmed| {
            seen.lock().unwrap().push(c.ack_lsn)
        }));
        let outcomes = [
            (Some(100), Outcome::Confirmed),
            (Some(200), Outcome::Unroutable("cdc.shop.x".into())),
            (Some(300), Outcome::Confirmed),
        ];
        for (lsn, outcome) in outcomes {
            let (a, r) = oneshot::channel();
            a.send(outcome).unwrap();
            tx.send(Unit::new(lsn, vec![answered(r)]))
                .await
                .ok()
                .unwrap();
        }
        drop(tx);
        assert_eq!(
            confirmer.await.unwrap(),
            Err(Outcome::Unroutable("cdc.shop.x".into()))
        );
        assert_eq!(*acked.lock().unwrap(), [Some(100)]);
    }
}
