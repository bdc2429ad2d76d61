//! The one seam between the engine and whatever acts on its transitions: the transition log
//! today, notification and failover actions later.
//!
//! Each consumer subscribes once, before the engine task starts, and gets its own bounded
//! channel. The engine task hands every transition to every consumer in the order the engine
//! produced them and waits for room in each channel: a slow consumer slows evaluation down
//! (backpressure) rather than losing transitions, and a stuck one stalls the engine, which
//! `/ready` then reports. A consumer is never silently skipped: one whose receiver is gone is
//! logged as an error and dropped.
//!
//! Whenever the engine (re)starts it first sends [`Delivery::Sync`] with the alerts active at
//! that moment, so a consumer can reconcile what it holds with the engine's state: after a
//! restart of lookout, or of the engine task after a fault.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Alert, AlertEvent};

/// What a consumer receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The alerts pending or firing now; sent first whenever the engine (re)starts.
    Sync { alerts: Vec<Alert> },
    /// One transition, in the order the engine made them.
    Transition(AlertEvent),
    /// After each scheduled evaluation, when some rule has `actions:`: the alerts pending or
    /// firing (with their `streak`), and the readings for `scale` actions.
    Tick {
        at: f64,
        alerts: Vec<Alert>,
        samples: Vec<super::Sample>,
    },
}

struct Subscriber {
    name: &'static str,
    tx: mpsc::Sender<Delivery>,
}

/// The consumers of transitions.
#[derive(Default)]
pub struct Seam {
    subscribers: Mutex<Vec<Subscriber>>,
}

/// A delivery that waits longer than this for a consumer is logged (once per wait).
const SLOW: Duration = Duration::from_secs(2);

impl Seam {
    pub fn new() -> Seam {
        Seam::default()
    }

    /// Subscribe a consumer with room for `capacity` deliveries before the engine waits.
    pub fn subscribe(&self, name: &'static str, capacity: usize) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Subscriber { name, tx });
        rx
    }

    /// The consumers' names.
    pub fn names(&self) -> Vec<&'static str> {
        self.senders().into_iter().map(|(n, _)| n).collect()
    }

    fn senders(&self) -> Vec<(&'static str, mpsc::Sender<Delivery>)> {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| (s.name, s.tx.clone()))
            .collect()
    }

    /// Hand `deliveries` to every consumer, in order, waiting for room.
    pub async fn deliver(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        let senders = self.senders();
        if senders.is_empty() {
            return;
        }
        for d in deliveries {
            for (name, tx) in &senders {
                let start = Instant::now();
                let sent = match tx.try_send(d.clone()) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                    Err(mpsc::error::TrySendError::Full(d)) => {
                        match tokio::time::timeout(SLOW, tx.reserve()).await {
                            Ok(Ok(permit)) => {
                                permit.send(d);
                                Ok(())
                            }
                            Ok(Err(_)) => Err(()),
                            Err(_) => {
                                tracing::warn!(consumer = name, "a consumer of alert transitions is not keeping up; evaluation waits for it");
                                let r = tx.send(d).await.map_err(|_| ());
                                if r.is_ok() {
                                    tracing::info!(
                                        consumer = name,
                                        waited_s = start.elapsed().as_secs_f64(),
                                        "consumer caught up"
                                    );
                                }
                                r
                            }
                        }
                    }
                };
                if sent.is_err() && self.is_subscribed(tx) {
                    tracing::error!(
                        consumer = name,
                        "a consumer of alert transitions has stopped; it gets no more transitions"
                    );
                    self.drop_closed();
                }
            }
        }
    }

    fn is_subscribed(&self, tx: &mpsc::Sender<Delivery>) -> bool {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|s| s.tx.same_channel(tx))
    }

    fn drop_closed(&self) {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| !s.tx.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::Transition;
    use std::sync::Arc;

    fn event(n: u32) -> Delivery {
        Delivery::Transition(AlertEvent {
            transition: Transition::Pending {
                active_at: n as f64,
            },
            alert: Alert {
                labels: Arc::default(),
                annotations: Arc::default(),
                state: "pending",
                active_at: n as f64,
                fired_at: None,
                value: None,
                group: "g".into(),
                alertname: format!("A{n}"),
                severity: "warning",
                notify: vec![],
                context_logs: 0,
                streak: 0,
                actions: Default::default(),
            },
        })
    }

    /// A consumer far slower than the engine, with room for one delivery, still gets every
    /// transition, in order: the engine waits for it.
    #[tokio::test]
    async fn a_slow_consumer_gets_every_transition_in_order() {
        let seam = Arc::new(Seam::new());
        let mut slow = seam.subscribe("slow", 1);
        let mut fast = seam.subscribe("fast", 1024);
        let producer = {
            let seam = seam.clone();
            tokio::spawn(async move {
                let all: Vec<u32> = (0..200).collect();
                for chunk in all.chunks(7) {
                    let batch: Vec<Delivery> = chunk.iter().map(|n| event(*n)).collect();
                    seam.deliver(batch).await;
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 200 {
            let d = slow.recv().await.unwrap();
            if got.len() % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got.push(d);
        }
        producer.await.unwrap();
        assert_eq!(got, (0..200).map(event).collect::<Vec<_>>());
        let mut n = 0;
        while let Ok(d) = fast.try_recv() {
            assert_eq!(d, event(n));
            n += 1;
        }
        assert_eq!(n, 200);
    }

    #[tokio::test]
    async fn a_consumer_that_stopped_is_dropped_and_the_others_go_on() {
        let seam = Seam::new();
        let gone = seam.subscribe("gone", 1);
        let mut alive = seam.subscribe("alive", 16);
        drop(gone);
        seam.deliver([event(1), event(2)]).await;
        assert_eq!(seam.names(), ["alive"]);
        assert_eq!(alive.recv().await, Some(event(1)));
        assert_eq!(alive.recv().await, Some(event(2)));
    }
}
