//! The schedule of faults, made from the seed and the run's length alone
//! (pure: no clock, no I/O), so that the same seed gives the same schedule
//! and the schedule is printed before the run starts.
//!
//! Every run holds each kind of fault once, in this order, each within its
//! own slice of the run so they never overlap: SIGKILL of a service, an
//! outage of the card provider, `kill -9` of Cairn itself, and SIGKILL of
//! another service. The last slice ends at 85 % of the run, so that the
//! customers still order after the last fault.

use std::fmt;
use std::time::Duration;

use crate::limits::PROVIDER_OUTAGE_MAX;
use crate::random::SeededRandom;

/// The services, by the name their process runs under.
pub const SERVICES: [&str; 6] = [
    "orders",
    "payments",
    "stock",
    "kitchen-1",
    "kitchen-2",
    "notifications",
];

/// One kind of fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of a service's process; it is started again after a second.
    KillService {
        /// The service.
        service: &'static str,
    },
    /// The card provider answers every call with 503 for this long.
    ProviderOutage {
        /// How long.
        length: Duration,
    },
    /// `kill -9` of Cairn; it is started again after a second.
    KillCairn,
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillService { service } => {
                write!(formatter, "SIGKILL the {service} service, restart it")
            }
            Fault::ProviderOutage { length } => write!(
                formatter,
                "the card provider fails every call for {:.1} s",
                length.as_secs_f64()
            ),
            Fault::KillCairn => write!(formatter, "kill -9 Cairn itself, restart it"),
        }
    }
}

/// A fault and when it happens, from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// The faults of one run, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it was made from.
    pub seed: u64,
    /// The faults.
    pub faults: Vec<ScheduledFault>,
}

impl Schedule {
    /// The schedule of a run of `duration` with `seed`.
    pub fn new(seed: u64, duration: Duration) -> Schedule {
        let mut random = SeededRandom::new(seed);
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        // Each fault's slice of the run, in per mille: the fault starts in
        // the first half of its slice.
        let slices = [(100, 250), (300, 500), (550, 700), (750, 850)];
        let at = |random: &mut SeededRandom, (start, end): (u64, u64)| {
            let middle = (start + end) / 2;
            Duration::from_millis(duration_ms / 1_000 * random.between(start, middle))
        };
        let first_victim = random.below(SERVICES.len() as u64) as usize;
        let second_victim =
            (first_victim + 1 + random.below(SERVICES.len() as u64 - 1) as usize) % SERVICES.len();
        let kill_at = at(&mut random, slices[0]);
        let outage_at = at(&mut random, slices[1]);
        // Long enough to exhaust some orders' deliveries, ending before
        // the slice of the next fault.
        let outage_length =
            Duration::from_millis((duration_ms / 1_000 * 100).max(3_000)).min(PROVIDER_OUTAGE_MAX);
        let cairn_at = at(&mut random, slices[2]);
        let second_kill_at = at(&mut random, slices[3]);
        Schedule {
            seed,
            faults: vec![
                ScheduledFault {
                    at: kill_at,
                    fault: Fault::KillService {
                        service: SERVICES[first_victim],
                    },
                },
                ScheduledFault {
                    at: outage_at,
                    fault: Fault::ProviderOutage {
                        length: outage_length,
                    },
                },
                ScheduledFault {
                    at: cairn_at,
                    fault: Fault::KillCairn,
                },
                ScheduledFault {
                    at: second_kill_at,
                    fault: Fault::KillService {
                        service: SERVICES[second_victim],
                    },
                },
            ],
        }
    }

    /// The schedule as printed at the start: one line per fault.
    pub fn lines(&self) -> Vec<String> {
        self.faults
            .iter()
            .map(|scheduled| {
                format!(
                    "  at {:>6.1} s  {}",
                    scheduled.at.as_secs_f64(),
                    scheduled.fault
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let duration = Duration::from_secs(120);
        assert_eq!(Schedule::new(7, duration), Schedule::new(7, duration));
        assert_eq!(
            Schedule::new(7, duration).lines(),
            Schedule::new(7, duration).lines()
        );
    }

    #[test]
    fn other_seeds_give_other_schedules() {
        let duration = Duration::from_secs(120);
        let schedules: std::collections::HashSet<Vec<String>> = (0..20)
            .map(|seed| Schedule::new(seed, duration).lines())
            .collect();
        assert!(schedules.len() > 10, "{schedules:?}");
    }

    #[test]
    fn every_kind_of_fault_happens_once_in_order_without_overlap() {
        for seed in 0..200 {
            for seconds in [20, 30, 120, 3_600] {
                let duration = Duration::from_secs(seconds);
                let schedule = Schedule::new(seed, duration);
                let kinds: Vec<&Fault> = schedule.faults.iter().map(|f| &f.fault).collect();
                assert!(matches!(kinds[0], Fault::KillService { .. }));
                assert!(matches!(kinds[1], Fault::ProviderOutage { .. }));
                assert!(matches!(kinds[2], Fault::KillCairn));
                assert!(matches!(kinds[3], Fault::KillService { .. }));
                assert_ne!(kinds[0], kinds[3], "two different services are killed");
                let Fault::ProviderOutage { length } = kinds[1] else {
                    unreachable!()
                };
                let outage_end = schedule.faults[1].at + *length;
                assert!(
                    outage_end <= schedule.faults[2].at,
                    "seed {seed}, {seconds} s: the outage ends before Cairn is killed"
                );
                for pair in schedule.faults.windows(2) {
                    assert!(pair[0].at + Duration::from_secs(1) < pair[1].at);
                }
                let last = schedule.faults[3].at;
                assert!(last <= duration * 85 / 100, "seed {seed}, {seconds} s");
                assert!(schedule.faults[0].at >= duration / 10);
            }
        }
    }
}
