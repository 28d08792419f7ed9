//! Credits: what a create may cost, and a cap on what one or many clients spend.
//!
//! The accounting rule, written once and used by the CLI, the Lambda and the C ABI:
//!
//! | moment | credits |
//! | --- | --- |
//! | before a create is sent | the most it can cost ([`BatchSize::credits`]: 3 per image of its batch) is **reserved**; when the reserved and spent total would pass the cap, nothing is sent ([`Error::CreditCapReached`]) |
//! | the create is refused by its answer (429, a 4xx, a connection never made): nothing was created | **refunded** in full |
//! | the create may have been accepted (unconfirmed), or its fate is unknown (the process stopped) | **spent**, as reserved |
//! | its task succeeded | **spent** as charged ([`TaskInfo::credits_charged`]), the rest refunded |
//! | its task failed (a negative state: not charged) | **refunded** in full |
//! | its task is still running (a wait ran out, to be resumed) | stays **reserved** |
//!
//! So the total only ever over-counts: a reservation whose fate this client never learns (a
//! crash between reserving and sending, a task resumed by another process) stays counted, and
//! the cap holds. The total lives in a [`CreditStore`]: [`MemoryCredits`] for one process, a
//! DynamoDB item per UTC day for Lambda instances (`backdrop-budget-dynamodb`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::budget::{BoxFuture, BudgetError};
use crate::error::{Error, Recovery};
use crate::request::BatchSize;
use crate::response::TaskInfo;
use crate::state::StateClass;

/// What a reservation was made in: the store's period (a UTC day, or empty for a store
/// without periods) and the credits reserved. A refund goes back to the same period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditReceipt {
    /// The store's period of the reservation.
    pub period: String,
    /// Credits reserved.
    pub credits: u32,
}

/// The outcome of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved; the total of the period now.
    Reserved {
        /// What to refund against.
        receipt: CreditReceipt,
        /// Spent and reserved in the period, this reservation included.
        total: u64,
    },
    /// Not reserved: it would pass the cap.
    Refused {
        /// Spent and reserved in the period.
        total: u64,
    },
}

/// Where the total of spent and reserved credits is kept, with atomic steps: one process
/// ([`MemoryCredits`]) or many (a DynamoDB item per UTC day).
pub trait CreditStore: Send + Sync + fmt::Debug {
    /// Adds `credits` to the current period's total if it stays within `cap`, atomically.
    fn reserve(&self, credits: u32, cap: u64) -> BoxFuture<'_, Result<Reservation, BudgetError>>;

    /// Takes `credits` of `receipt` back (a refund; never below zero).
    fn refund(
        &self,
        receipt: &CreditReceipt,
        credits: u32,
    ) -> BoxFuture<'_, Result<(), BudgetError>>;

    /// The current period's total of spent and reserved credits.
    fn total(&self) -> BoxFuture<'_, Result<u64, BudgetError>>;
}

/// A [`CreditStore`] in memory: one process's total, from `spent` credits on.
#[derive(Debug, Default)]
pub struct MemoryCredits {
    total: Mutex<u64>,
}

impl MemoryCredits {
    /// A store whose total starts at `spent` (what earlier runs spent, say).
    pub fn starting_at(spent: u64) -> Self {
        MemoryCredits {
            total: Mutex::new(spent),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.total
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CreditStore for MemoryCredits {
    fn reserve(&self, credits: u32, cap: u64) -> BoxFuture<'_, Result<Reservation, BudgetError>> {
        let mut total = self.lock();
        let after = total.saturating_add(u64::from(credits));
        let outcome = if after <= cap {
            *total = after;
            Reservation::Reserved {
                receipt: CreditReceipt {
                    period: String::new(),
                    credits,
                },
                total: after,
            }
        } else {
            Reservation::Refused { total: *total }
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn refund(
        &self,
        _receipt: &CreditReceipt,
        credits: u32,
    ) -> BoxFuture<'_, Result<(), BudgetError>> {
        let mut total = self.lock();
        *total = total.saturating_sub(u64::from(credits));
        Box::pin(async { Ok(()) })
    }

    fn total(&self) -> BoxFuture<'_, Result<u64, BudgetError>> {
        let total = *self.lock();
        Box::pin(async move { Ok(total) })
    }
}

/// A cap on credits: at most `limit` spent and reserved in the store's period.
#[derive(Debug, Clone)]
pub struct CreditCap {
    /// The most credits spent and reserved at once.
    pub limit: u64,
    /// Where the total is kept.
    pub store: Arc<dyn CreditStore>,
}

impl CreditCap {
    /// A cap of `limit` credits for this process alone, `already_spent` counted from the start.
    pub fn in_memory(limit: u64, already_spent: u64) -> Self {
        CreditCap {
            limit,
            store: Arc::new(MemoryCredits::starting_at(already_spent)),
        }
    }
}

/// A client's credits: its cap, if any, and the reservations of its tasks until their fate is
/// known.
#[derive(Debug, Default)]
pub(crate) struct CreditMeter {
    cap: Option<CreditCap>,
    /// Reservations of created tasks, by task id.
    held: Mutex<HashMap<String, CreditReceipt>>,
}

/// A reservation for one create, from [`CreditMeter::reserve`] until its answer.
#[derive(Debug)]
pub(crate) struct Hold {
    receipt: Option<CreditReceipt>,
}

impl CreditMeter {
    pub(crate) fn new(cap: Option<CreditCap>) -> Self {
        CreditMeter {
            cap,
            held: Mutex::default(),
        }
    }

    /// The cap, if any.
    pub(crate) fn cap(&self) -> Option<&CreditCap> {
        self.cap.as_ref()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, CreditReceipt>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves the most a create of `batch` can cost, or says why not (nothing is sent then).
    pub(crate) async fn reserve(&self, batch: BatchSize) -> Result<Hold, Error> {
        let Some(cap) = &self.cap else {
            return Ok(Hold { receipt: None });
        };
        let needed = batch.credits();
        let reserved = cap
            .store
            .reserve(needed, cap.limit)
            .await
            .map_err(|e| Error::Config(format!("the credit cap cannot be checked: {e}")))?;
        match reserved {
            Reservation::Reserved { receipt, total } => {
                tracing::debug!(credits = needed, total, cap = cap.limit, "credits reserved");
                Ok(Hold {
                    receipt: Some(receipt),
                })
            }
            Reservation::Refused { total } => Err(Error::CreditCapReached {
                cap: cap.limit,
                spent: total,
                needed,
            }),
        }
    }

    /// Settles a create's reservation by its answer: the task's own until its fate is known,
    /// refunded when the answer refused the create, spent otherwise.
    pub(crate) async fn answered(&self, hold: Hold, answer: &Result<String, Error>) {
        let Some(receipt) = hold.receipt else {
            return;
        };
        match answer {
            Ok(task_id) => {
                self.held().insert(task_id.clone(), receipt);
            }
            Err(error) if matches!(error.recovery(), Recovery::Retry | Recovery::Permanent) => {
                let credits = receipt.credits;
                self.refund(&receipt, credits).await;
            }
            Err(_) => {}
        }
    }

    /// Settles a task's reservation once a query saw it end: spent as charged when it
    /// succeeded, refunded when it failed.
    pub(crate) async fn task_seen(&self, task: &TaskInfo) {
        let refund = match task.class() {
            StateClass::Succeeded => None,
            StateClass::Failed => Some(u32::MAX),
            StateClass::Pending => return,
        };
        let Some(receipt) = self.held().remove(&task.task_id) else {
            return;
        };
        let credits = match refund {
            Some(_) => receipt.credits,
            None => receipt.credits.saturating_sub(task.credits_charged()),
        };
        if credits > 0 {
            self.refund(&receipt, credits).await;
        }
    }

    async fn refund(&self, receipt: &CreditReceipt, credits: u32) {
        if let Some(cap) = &self.cap
            && let Err(error) = cap.store.refund(receipt, credits).await
        {
            // Counted as spent: the cap only over-counts.
            tracing::warn!(credits, error = %error, "credits could not be refunded; they stay counted");
        }
    }

    /// The total of spent and reserved credits, when there is a cap.
    pub(crate) async fn total(&self) -> Result<Option<u64>, Error> {
        match &self.cap {
            None => Ok(None),
            Some(cap) => cap
                .store
                .total()
                .await
                .map(Some)
                .map_err(|e| Error::Config(format!("the credit total cannot be read: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TaskState;

    fn task(id: &str, state: TaskState, images: usize) -> TaskInfo {
        let mut value = serde_json::json!({"task_id": id, "state": state.code()});
        for n in 1..=images {
            value[format!("image_{n}")] = serde_json::json!(format!("https://r/{n}.jpg"));
        }
        serde_json::from_value(value).unwrap()
    }

    fn meter(limit: u64) -> (CreditMeter, Arc<MemoryCredits>) {
        let store = Arc::new(MemoryCredits::default());
        let cap = CreditCap {
            limit,
            store: store.clone(),
        };
        (CreditMeter::new(Some(cap)), store)
    }

    async fn total(store: &MemoryCredits) -> u64 {
        store.total().await.unwrap()
    }

    #[tokio::test]
    async fn the_accounting_rule() {
        let (meter, store) = meter(18);
        // Three creates of two images fit 18 credits; the fourth does not, and says why.
        let mut holds = Vec::new();
        for _ in 0..3 {
            holds.push(meter.reserve(BatchSize::Two).await.unwrap());
        }
        let refused = meter.reserve(BatchSize::Two).await.unwrap_err();
        assert!(
            matches!(
                refused,
                Error::CreditCapReached {
                    cap: 18,
                    spent: 18,
                    needed: 6
                }
            ),
            "{refused:?}"
        );
        assert_eq!(refused.recovery(), Recovery::Retry, "nothing was sent");
        // A create refused by its answer: refunded. One that may have landed: spent.
        let refused_answer = Error::RateLimited {
            during: crate::Operation::Create,
            message: String::new(),
            retry_after: None,
            attempts: 6,
        };
        let unconfirmed = Error::Server {
            during: crate::Operation::Create,
            status: 502,
            message: String::new(),
            attempts: 1,
        };
        let mut holds = holds.into_iter();
        meter
            .answered(holds.next().unwrap(), &Err(refused_answer))
            .await;
        assert_eq!(total(&store).await, 12);
        meter
            .answered(holds.next().unwrap(), &Err(unconfirmed))
            .await;
        assert_eq!(total(&store).await, 12);
        // A created task: held until it ends; one image of two charged: 3 refunded.
        meter
            .answered(holds.next().unwrap(), &Ok("T1".into()))
            .await;
        meter.task_seen(&task("T1", TaskState::Processing, 0)).await;
        assert_eq!(total(&store).await, 12);
        meter.task_seen(&task("T1", TaskState::Completed, 1)).await;
        assert_eq!(total(&store).await, 9);
        // Seen again: settled once.
        meter.task_seen(&task("T1", TaskState::Completed, 1)).await;
        assert_eq!(total(&store).await, 9);
        // A failed task is not charged: refunded in full.
        let hold = meter.reserve(BatchSize::Two).await.unwrap();
        meter.answered(hold, &Ok("T2".into())).await;
        assert_eq!(total(&store).await, 15);
        meter
            .task_seen(&task("T2", TaskState::InvalidPrompt, 0))
            .await;
        assert_eq!(total(&store).await, 9);
    }

    #[tokio::test]
    async fn no_cap_reserves_nothing() {
        let meter = CreditMeter::new(None);
        let hold = meter.reserve(BatchSize::Two).await.unwrap();
        meter.answered(hold, &Ok("T".into())).await;
        assert_eq!(meter.total().await.unwrap(), None);
    }
}
