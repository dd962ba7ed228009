//! Where a step draws the line between clients. A client is on the new release when its
//! bucket (its id hashed with the deployment's seed) is below the step's threshold. With the
//! threshold equal to the step's share, the share of a real fleet only approaches the target
//! (a fleet of 1,000 strays by a few points, as any hash sample does). So the threshold is
//! set from the fleet itself: the clients seen reading the config lately are sorted by bucket
//! and the line is drawn after the step's share of them. Every replica serves the same
//! threshold (it is stored with the change), a client keeps its side across reconnects, and
//! thresholds only grow, so nobody goes back while the share grows. Clients never seen fall on
//! either side as their hash says.

use super::strategy::{FULL, client_bucket};

/// Below this many known clients, the nominal share is used as it is.
pub const MIN_FLEET: usize = 20;

/// The threshold that puts `share` (parts per million) of `clients` on the new release, never
/// below `floor` (the threshold already served).
pub fn calibrated(share: u32, seed: &str, clients: &[String], floor: u32) -> u32 {
    if share >= FULL {
        return FULL;
    }
    if clients.len() < MIN_FLEET {
        return share.max(floor);
    }
    let mut buckets: Vec<u32> = clients.iter().map(|id| client_bucket(seed, id)).collect();
    buckets.sort_unstable();
    let wanted = (f64::from(share) / f64::from(FULL) * buckets.len() as f64).round() as usize;
    let threshold = match buckets.get(wanted) {
        Some(bucket) => *bucket,
        None => buckets.last().map_or(share, |last| last.saturating_add(1)),
    };
    threshold.clamp(1, FULL - 1).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biz::deployments::strategy::share_of;

    fn fleet(count: usize) -> Vec<String> {
        (0..count).map(|n| format!("pod-{n}")).collect()
    }

    fn on_new(clients: &[String], seed: &str, threshold: u32) -> usize {
        clients.iter().filter(|id| client_bucket(seed, id) < threshold).count()
    }

    #[test]
    fn every_step_puts_exactly_its_share_of_the_known_fleet_on_the_new_release() {
        let clients = fleet(1000);
        let mut floor = 0;
        let mut previous = 0;
        for tenth in 1..10_u32 {
            let threshold = calibrated(share_of(f64::from(tenth) * 10.0), "seed", &clients, floor);
            let count = on_new(&clients, "seed", threshold);
            assert_eq!(count, tenth as usize * 100, "step {tenth}0%");
            assert!(threshold >= floor);
            assert!(count >= previous);
            floor = threshold;
            previous = count;
        }
        assert_eq!(calibrated(FULL, "seed", &clients, floor), FULL);
    }

    #[test]
    fn a_small_fleet_uses_the_nominal_share_and_thresholds_never_go_down() {
        let few = fleet(5);
        assert_eq!(calibrated(300_000, "seed", &few, 0), 300_000);
        assert_eq!(calibrated(300_000, "seed", &few, 400_000), 400_000);
        let clients = fleet(1000);
        let high = calibrated(share_of(50.0), "seed", &clients, 0);
        assert_eq!(calibrated(share_of(40.0), "seed", &clients, high), high);
    }
}
