//! How large the fleet must be to keep a key busy, from its QPS alone: the template's
//! `KeyQps` parameter picks the SQS batch size, the most instances at once and the reserved
//! concurrency from the `FleetByKeyQps` mapping, which these functions compute (a test keeps
//! the two equal, and prints the mapping to paste when they differ).
//!
//! The arithmetic (README, "Sizing the Lambda for a raised key"):
//! 1. **Tasks in flight.** Core's [`tasks_in_flight`]: Little's law from the key's task rate
//!    (QPS / 2 a second) and the spec's typical task (95 % within 30 s), doubled for detection
//!    and the tail — 60 at QPS 2, 1,500 at QPS 50.
//! 2. **Records per invocation** (the SQS batch size). An instance holds one invocation, and an
//!    invocation holds its batch until the slowest task of it ends. Ten records — SQS's batch
//!    without a window and small enough that one timeout touches few objects — until the fleet
//!    would need more than [`INSTANCES_BEFORE_BIGGER_BATCHES`] instances; then as many as keep
//!    it there, at most [`MAX_RECORDS_PER_INVOCATION`] (an upload-mode instance streams its
//!    images through the 512 MB of `/tmp`: 25 of 20 MB).
//! 3. **Instances** (the event source's `MaximumConcurrency`): tasks in flight / records per
//!    invocation, rounded up, at least 2 (the event source's minimum).
//! 4. **Reserved concurrency**: the same number, so that other functions cannot starve the
//!    event source below it (AWS advises that it never be below `MaximumConcurrency`).

use backdrop_core::{ExpectedProcessing, RateLimit, tasks_in_flight};

/// The QPS values the template offers for `KeyQps` (PicWish raises keys on request; these
/// cover the usual steps).
pub const KEY_QPS_CHOICES: [u32; 14] = [1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100];

/// Records per invocation below the point where instances would pass
/// [`INSTANCES_BEFORE_BIGGER_BATCHES`].
pub const RECORDS_PER_INVOCATION: u32 = 10;

/// Instances a fleet grows to before its batches grow instead: fewer holders of the shared
/// budget, fewer cold starts, and room in an account's default 1,000 concurrent executions.
pub const INSTANCES_BEFORE_BIGGER_BATCHES: u32 = 100;

/// The most records one invocation takes: 25 images of 20 MB fill the 512 MB of `/tmp` an
/// upload-mode instance streams them through.
pub const MAX_RECORDS_PER_INVOCATION: u32 = 25;

/// The event source's smallest `MaximumConcurrency`.
const MIN_INSTANCES: u32 = 2;

/// What the fleet of one key looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSize {
    /// Tasks in flight that keep the key busy (core's [`tasks_in_flight`]).
    pub tasks_in_flight: u32,
    /// Records per invocation: the SQS event source's `BatchSize`.
    pub records_per_invocation: u32,
    /// The most instances at once: the event source's `MaximumConcurrency`, and `MAX_INSTANCES`.
    pub max_instances: u32,
}

impl FleetSize {
    /// The fleet for a key of `key_qps` requests per second (see the module's arithmetic).
    pub fn for_key(key_qps: u32) -> FleetSize {
        let tasks = tasks_in_flight(
            RateLimit::per_second(key_qps.max(1)),
            ExpectedProcessing::TYPICAL,
        );
        let tasks = u32::try_from(tasks).unwrap_or(u32::MAX);
        let records = tasks
            .div_ceil(INSTANCES_BEFORE_BIGGER_BATCHES)
            .clamp(RECORDS_PER_INVOCATION, MAX_RECORDS_PER_INVOCATION);
        let instances = tasks.div_ceil(records).max(MIN_INSTANCES);
        FleetSize {
            tasks_in_flight: tasks,
            records_per_invocation: records,
            max_instances: instances,
        }
    }

    /// The function's reserved concurrency: as many as the instances the event source may run.
    pub fn reserved_concurrency(&self) -> u32 {
        self.max_instances
    }

    /// Tasks `instances` instances of `records` records each hold at once.
    pub fn holds(instances: u32, records: u32) -> u32 {
        instances.saturating_mul(records)
    }

    /// The template's `FleetByKeyQps` mapping, as YAML under `Mappings:` (four spaces in).
    pub fn template_mapping() -> String {
        let mut yaml = String::from("  FleetByKeyQps:\n");
        for qps in KEY_QPS_CHOICES {
            let fleet = FleetSize::for_key(qps);
            yaml.push_str(&format!(
                "    \"{qps}\":\n      TasksInFlight: {}\n      BatchSize: {}\n      \
                 MaxInstances: {}\n      ReservedConcurrency: {}\n",
                fleet.tasks_in_flight,
                fleet.records_per_invocation,
                fleet.max_instances,
                fleet.reserved_concurrency()
            ));
        }
        yaml
    }
}

/// A warning when `instances` instances of `records` records each cannot keep a key of
/// `key_qps` busy (a hand-made configuration; the template sizes it from `KeyQps`).
pub fn undersized(key_qps: u32, instances: u32, records: u32) -> Option<String> {
    let fleet = FleetSize::for_key(key_qps);
    let holds = FleetSize::holds(instances, records);
    (holds < fleet.tasks_in_flight).then(|| {
        format!(
            "KEY_QPS={key_qps} keeps {} tasks in flight, but MAX_INSTANCES={instances} × \
             RECORDS_PER_INVOCATION={records} holds {holds}: the key will not be used fully; \
             deploy with KeyQps={key_qps} (the template sizes the fleet from it: {} instances \
             of {} records)",
            fleet.tasks_in_flight, fleet.max_instances, fleet.records_per_invocation
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_fleets() {
        let fleet = |qps| {
            let f = FleetSize::for_key(qps);
            (f.tasks_in_flight, f.records_per_invocation, f.max_instances)
        };
        assert_eq!(fleet(1), (30, 10, 3));
        assert_eq!(fleet(2), (60, 10, 6));
        assert_eq!(fleet(10), (300, 10, 30));
        assert_eq!(fleet(20), (600, 10, 60));
        assert_eq!(fleet(50), (1_500, 15, 100));
        // MAX_IN_FLIGHT bounds the tasks; the batch stays within /tmp.
        assert_eq!(fleet(100), (2_048, 21, 98));
        for qps in KEY_QPS_CHOICES {
            let f = FleetSize::for_key(qps);
            assert!(
                FleetSize::holds(f.max_instances, f.records_per_invocation) >= f.tasks_in_flight
            );
            assert!(f.records_per_invocation <= MAX_RECORDS_PER_INVOCATION);
            assert_eq!(f.reserved_concurrency(), f.max_instances);
        }
    }

    #[test]
    fn an_undersized_fleet_is_named() {
        assert_eq!(undersized(2, 6, 10), None);
        let warning = undersized(50, 20, 10).unwrap();
        assert!(warning.contains("1500 tasks in flight"), "{warning}");
        assert!(warning.contains("holds 200"), "{warning}");
        assert!(warning.contains("KeyQps=50"), "{warning}");
    }
}
