//! Lease election and sharding, driven against the FAKE in-process Lease
//! API (`dbintel_cluster::fake`: resourceVersion conflicts like the API
//! server's, partitions per replica) with a manual clock. No Kubernetes
//! API server can run here; every test name says `fake_api`.

use std::time::Duration;

use dbintel_cluster::fake::{FakeLeaseClient, FakeLeaseServer, ManualClock};
use dbintel_cluster::lease::{ApiError, Claim, Clock, Gate, LeaseApi, LeaseRecord, Sharder, Timing};
use dbintel_core::BoxFuture;

const STEP: Duration = Duration::from_millis(100);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

struct Replica {
    name: String,
    api: FakeLeaseClient,
    claim: Claim,
    alive: bool,
    next_tick: Duration,
}

fn replicas(server: &FakeLeaseServer, n: usize, timing: Timing) -> Vec<Replica> {
    (0..n)
        .map(|i| {
            let name = format!("dbintel-{i}");
            Replica {
                api: server.client(&name),
                claim: Claim::new("dbintel", name.clone(), timing),
                name,
                alive: true,
                next_tick: Duration::from_millis(i as u64 * 300),
            }
        })
        .collect()
}

/// Runs the replicas for `span` in 100 ms steps (each ticks every
/// `retry`), asserting at every step that at most one acts as leader.
/// Returns who held the lease at the end.
fn run_for(replicas: &mut [Replica], clock: &ManualClock, timing: Timing, span: Duration) -> Vec<String> {
    let end = clock.now() + span;
    while clock.now() < end {
        for r in replicas.iter_mut().filter(|r| r.alive && clock.now() >= r.next_tick) {
            block_on(r.claim.tick(&r.api, clock));
            r.next_tick = clock.now() + timing.retry;
        }
        // a dead process queries nothing, whatever its lease says
        let now = clock.now();
        let leaders: Vec<&str> = replicas.iter().filter(|r| r.alive && r.claim.held(now)).map(|r| r.name.as_str()).collect();
        assert!(leaders.len() <= 1, "two leaders at {now:?}: {leaders:?}");
        clock.advance(STEP);
    }
    let now = clock.now();
    replicas.iter().filter(|r| r.alive && r.claim.held(now)).map(|r| r.name.clone()).collect()
}

#[test]
fn fake_api_one_leader_renews_and_a_dead_leader_is_replaced_within_one_lease_duration() {
    let (server, clock, timing) = (FakeLeaseServer::default(), ManualClock::default(), Timing::default());
    let mut rs = replicas(&server, 3, timing);
    let leaders = run_for(&mut rs, &clock, timing, Duration::from_secs(1));
    assert_eq!(leaders, ["dbintel-0"], "the first to try acquires");
    let leaders = run_for(&mut rs, &clock, timing, Duration::from_secs(60));
    assert_eq!(leaders, ["dbintel-0"], "and keeps it by renewing");
    let lease = server.lease("dbintel").expect("lease");
    assert_eq!(lease.transitions, 0, "no hand-over while dbintel-0 renews: {lease:?}");

    // the leader dies (stops renewing, releases nothing)
    rs[0].alive = false;
    let died = clock.now();
    let mut took_over = None;
    while took_over.is_none() {
        let leaders = run_for(&mut rs, &clock, timing, STEP);
        if let Some(l) = leaders.first() {
            took_over = Some((l.clone(), clock.now() - died));
        }
        assert!(clock.now() - died < Duration::from_secs(30), "nobody took over in 30 s; the lease: {:?}", server.lease("dbintel"));
    }
    let (who, after) = took_over.unwrap_or_default();
    assert_ne!(who, "dbintel-0", "the dead leader cannot take over from itself");
    assert!(after <= timing.duration + timing.retry + STEP, "failover took {after:?}");
    assert_eq!(server.lease("dbintel").map(|l| l.transitions), Some(1), "one hand-over: {:?}", server.lease("dbintel"));
}

#[test]
fn fake_api_a_leader_cut_off_from_the_api_stops_before_anyone_can_acquire() {
    let (server, clock, timing) = (FakeLeaseServer::default(), ManualClock::default(), Timing::default());
    let mut rs = replicas(&server, 3, timing);
    run_for(&mut rs, &clock, timing, Duration::from_secs(5));
    server.cut_off("dbintel-0");
    let cut = clock.now();
    // run_for asserts at every step that the two never overlap
    let mut stopped_at = None;
    let mut successor_at = None;
    while successor_at.is_none() {
        run_for(&mut rs, &clock, timing, STEP);
        let now = clock.now();
        if stopped_at.is_none() && !rs[0].claim.held(now) {
            stopped_at = Some(now - cut);
        }
        if rs[1..].iter().any(|r| r.claim.held(now)) {
            successor_at = Some(now - cut);
        }
    }
    let (stopped, successor) = (stopped_at.unwrap_or_default(), successor_at.unwrap_or_default());
    assert!(stopped <= timing.renew, "the cut-off leader acted for {stopped:?}");
    assert!(stopped < successor, "stopped at {stopped:?}, successor at {successor:?}");
    // back online, it does not take the lease back
    server.reconnect("dbintel-0");
    let leaders = run_for(&mut rs, &clock, timing, Duration::from_secs(30));
    assert_eq!(leaders.len(), 1, "one leader after the partition heals: {leaders:?}");
    assert_ne!(leaders[0], "dbintel-0", "the replica cut off lost its lease for good: {leaders:?}");
}

/// The fake API as one replica sees it, noting at each write that clears
/// the holder (a release) whether that replica's gate was still open at
/// that moment.
struct GateAtRelease<'a> {
    api: &'a FakeLeaseClient,
    gate: std::sync::Arc<Gate>,
    clock: &'a ManualClock,
    open_at_release: std::sync::Mutex<Vec<bool>>,
}

impl LeaseApi for GateAtRelease<'_> {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>> {
        self.api.get(name)
    }
    fn create<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        self.api.create(name, record)
    }
    fn replace<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        if record.holder.is_none() {
            self.open_at_release.lock().unwrap().push(self.gate.holds_at(self.clock.now()));
        }
        self.api.replace(name, record)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>> {
        self.api.list(prefix)
    }
}

#[test]
fn fake_api_a_released_lease_is_taken_at_the_next_try() {
    let (server, clock, timing) = (FakeLeaseServer::default(), ManualClock::default(), Timing::default());
    let mut rs = replicas(&server, 3, timing);
    run_for(&mut rs, &clock, timing, Duration::from_secs(5));
    let r0 = &mut rs[0];
    assert!(r0.claim.held(clock.now()), "dbintel-0 leads before it releases; the lease: {:?}", server.lease("dbintel"));

    let watching = GateAtRelease { api: &r0.api, gate: r0.claim.gate.clone(), clock: &clock, open_at_release: Default::default() };
    block_on(r0.claim.release(&watching, &clock));
    r0.alive = false;
    // observed when the release reached the API, not after the fact
    let open = watching.open_at_release.lock().unwrap().clone();
    assert_eq!(open, [false], "the gate at each release write (true: still acting when the lease was handed over)");
    let released = clock.now();
    let leaders = run_for(&mut rs, &clock, timing, timing.retry + STEP);
    assert_eq!(leaders.len(), 1, "someone took over within one retry of {released:?}: {leaders:?}");
}

fn sharders(server: &FakeLeaseServer, n: usize, targets: &[String], timing: Timing) -> Vec<(String, FakeLeaseClient, Sharder, bool)> {
    (0..n)
        .map(|i| {
            let name = format!("dbintel-{i}");
            (name.clone(), server.client(&name), Sharder::new("dbintel", &name, targets, timing), true)
        })
        .collect()
}

fn tick_all(rs: &mut [(String, FakeLeaseClient, Sharder, bool)], clock: &ManualClock) {
    for (_, api, sharder, alive) in rs.iter_mut() {
        if *alive {
            block_on(sharder.tick(api, clock));
        }
    }
}

fn assert_exclusive(rs: &[(String, FakeLeaseClient, Sharder, bool)], targets: &[String], now: Duration) {
    for t in targets {
        let owners: Vec<&str> = rs.iter().filter(|r| r.2.owned(now).contains(&t.as_str())).map(|r| r.0.as_str()).collect();
        assert!(owners.len() <= 1, "{t} scraped by {owners:?} at {now:?}");
    }
}

#[test]
fn fake_api_three_replicas_split_thirty_targets_and_take_over_a_dead_ones() {
    let (server, clock, timing) = (FakeLeaseServer::default(), ManualClock::default(), Timing::default());
    let targets: Vec<String> = (0..30).map(|i| format!("db{i:02}")).collect();
    let mut rs = sharders(&server, 3, &targets, timing);
    for _ in 0..20 {
        tick_all(&mut rs, &clock);
        assert_exclusive(&rs, &targets, clock.now());
        clock.advance(timing.retry);
    }
    let counts: Vec<usize> = rs.iter().map(|r| r.2.owned(clock.now()).len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 30, "every target owned: {counts:?}");
    assert!(counts.iter().all(|&c| c == 10), "about ten each: {counts:?}");

    rs[2].3 = false; // dies
    let died = clock.now();
    let mut all_owned_at = None;
    for _ in 0..40 {
        clock.advance(STEP * 5);
        tick_all(&mut rs, &clock);
        let now = clock.now();
        assert_exclusive(&rs, &targets, now);
        let owned: usize = rs[..2].iter().map(|r| r.2.owned(now).len()).sum();
        if owned == 30 && all_owned_at.is_none() {
            all_owned_at = Some(now - died);
        }
    }
    let moved = all_owned_at.expect("the survivors own every target");
    // a lease lasts `duration` from its last renewal, seen by a survivor
    // up to one `retry` later; then one more try to acquire it
    assert!(moved <= timing.duration + 2 * timing.retry, "targets moved after {moved:?}");
    let counts: Vec<usize> = rs[..2].iter().map(|r| r.2.owned(clock.now()).len()).collect();
    assert_eq!(counts, [15, 15], "the two survivors split the 30 targets evenly");
}

mod schedules {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Event {
        Tick(usize),
        Crash(usize),
        Restart(usize),
        CutOff(usize),
        Reconnect(usize),
        Release(usize),
        Wait(u64),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (0..3usize).prop_map(Event::Tick),
            1 => (0..3usize).prop_map(Event::Crash),
            1 => (0..3usize).prop_map(Event::Restart),
            1 => (0..3usize).prop_map(Event::CutOff),
            1 => (0..3usize).prop_map(Event::Reconnect),
            1 => (0..3usize).prop_map(Event::Release),
            4 => (0..4000u64).prop_map(Event::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Whatever happens — crashes, restarts with a fresh state,
        /// partitions, releases, any timing — no target is ever scraped by
        /// two replicas at once.
        #[test]
        fn fake_api_random_schedules_never_let_two_replicas_scrape_one_target(events in proptest::collection::vec(event(), 1..400)) {
            let (server, clock) = (FakeLeaseServer::default(), ManualClock::default());
            let timing = Timing::default();
            let targets: Vec<String> = (0..7).map(|i| format!("db{i}")).collect();
            let mut rs = sharders(&server, 3, &targets, timing);
            for e in events {
                match e {
                    Event::Tick(i) => { let (_, api, s, alive) = &mut rs[i]; if *alive { block_on(s.tick(api, &clock)); } },
                    Event::Crash(i) => rs[i].3 = false,
                    Event::Restart(i) => if !rs[i].3 {
                        // a new process: nothing remembered
                        let name = rs[i].0.clone();
                        rs[i].2 = Sharder::new("dbintel", &name, &targets, timing);
                        rs[i].3 = true;
                    },
                    Event::CutOff(i) => server.cut_off(&rs[i].0),
                    Event::Reconnect(i) => server.reconnect(&rs[i].0),
                    Event::Release(i) => { let (_, api, s, _) = &mut rs[i]; block_on(s.release_all(api, &clock)); },
                    Event::Wait(ms) => clock.advance(Duration::from_millis(ms)),
                }
                let now = clock.now();
                for t in &targets {
                    let owners = rs.iter().filter(|r| r.3 && r.2.owned(now).contains(&t.as_str())).count();
                    prop_assert!(owners <= 1, "{} owned twice at {:?}", t, now);
                }
            }
        }
    }
}
