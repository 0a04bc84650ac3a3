//! Sharded leases at fleet scale, on the FAKE in-process Lease API
//! (`dbintel_cluster::fake`: resourceVersion conflicts as the API server
//! answers them, a latency per call, partitions), run by the real
//! [`Coordinator`] loop under tokio's paused clock: minutes of lease time
//! pass in moments, and every call still takes its 25 ms. No Kubernetes API
//! server can run here; every test name says `fake_api`.

use std::sync::Arc;
use std::time::Duration;

use dbintel_cluster::fake::{FakeLeaseClient, FakeLeaseServer, ManualClock, TokioClock};
use dbintel_cluster::lease::{ApiError, Claim, Clock, LeaseApi, LeaseRecord, Timing};
use dbintel_cluster::{Coordinator, Key, Mode};
use dbintel_core::fence::Fences;
use dbintel_core::BoxFuture;

/// What the API server's round trip costs under load (the issue measured
/// ~25 ms).
const LATENCY: Duration = Duration::from_millis(25);
const SAMPLE: Duration = Duration::from_millis(100);

fn sharded(targets: &[String], timing: Timing) -> Key {
    Key {
        mode: Mode::Sharded,
        lease: "dbintel".into(),
        namespace: Some("dbintel".into()),
        timing: (timing.duration, timing.renew, timing.retry),
        targets: targets.to_vec(),
    }
}

/// Which replicas' fences hold each target right now.
fn holders(fences: &[Arc<dyn Fences>], targets: &[String]) -> Vec<Vec<usize>> {
    targets
        .iter()
        .map(|t| fences.iter().enumerate().filter(|(_, f)| f.fence(t).is_some_and(|f| f.holds())).map(|(i, _)| i).collect())
        .collect()
}

/// 200 targets, three replicas, then two of them cut off from the API (as
/// good as dead to it): the survivor takes every target within a lease
/// duration and a few tries, and then holds all 200 through ten renew
/// periods without one lapsing — with 25 ms per API call. Renewing one
/// lease after another (GET then PUT each, 10 s a pass) let every lease
/// lapse on each pass.
#[tokio::test(start_paused = true)]
async fn fake_api_one_survivor_holds_all_200_sharded_leases_at_25ms_per_call_through_ten_renew_periods() {
    let server = FakeLeaseServer::default();
    server.set_latency(LATENCY);
    let timing = Timing::default();
    let targets: Vec<String> = (0..200).map(|i| format!("fleet/db{i:03}")).collect();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::default());
    let replicas: Vec<Coordinator> = (0..3)
        .map(|i| {
            let name = format!("dbintel-{i}");
            Coordinator::start(sharded(&targets, timing), name.clone(), Arc::new(server.client(&name)), clock.clone())
        })
        .collect();
    let fences: Vec<Arc<dyn Fences>> = replicas.iter().map(Coordinator::fences).collect();

    // three replicas split the fleet
    let mut waited = Duration::ZERO;
    loop {
        tokio::time::sleep(SAMPLE).await;
        waited += SAMPLE;
        let h = holders(&fences, &targets);
        assert!(h.iter().all(|r| r.len() <= 1), "a target held twice: {h:?}");
        if h.iter().all(|r| r.len() == 1) {
            break;
        }
        assert!(
            waited < Duration::from_secs(60),
            "the three replicas did not cover the fleet in 60 s: {} held",
            h.iter().filter(|r| !r.is_empty()).count()
        );
    }

    // two replicas die to the API; the third must take and keep everything
    server.cut_off("dbintel-1");
    server.cut_off("dbintel-2");
    let cut = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(SAMPLE).await;
        let h = holders(&fences, &targets);
        assert!(h.iter().all(|r| r.len() <= 1), "a target held twice after the partition: {h:?}");
        if h.iter().all(|r| r == &[0]) {
            break;
        }
        // a lease lasts `duration` from its last renewal as a survivor saw
        // it; the membership count drops after as long; then the takeover
        let limit = 2 * timing.duration + 4 * timing.retry;
        assert!(cut.elapsed() < limit, "the survivor holds {} of 200 after {limit:?}", h.iter().filter(|r| r == &&[0]).count());
    }
    let took = cut.elapsed();

    let held_from = tokio::time::Instant::now();
    let calls_before = server.calls_from("dbintel-0");
    let mut lapses = Vec::new();
    while held_from.elapsed() < 10 * timing.renew {
        tokio::time::sleep(SAMPLE).await;
        let h = holders(&fences, &targets);
        let lapsed: Vec<&String> = targets.iter().zip(&h).filter(|(_, r)| r != &&[0]).map(|(t, _)| t).collect();
        if !lapsed.is_empty() {
            lapses.push((held_from.elapsed(), lapsed.len()));
        }
    }
    assert!(
        lapses.is_empty(),
        "the survivor (all 200 after {took:?}) let leases lapse while it ran; (time since, how many): {:?}",
        &lapses[..lapses.len().min(10)]
    );
    // what the survivor asks of the API server: a GET and a PUT per lease
    // every other pass (a lease renewed less than renew/3 ago waits), and
    // four calls of its own per pass (membership GET and PUT, two LISTs)
    let calls = server.calls_from("dbintel-0") - calls_before;
    let passes = (10 * timing.renew).as_secs_f64() / timing.retry.as_secs_f64();
    assert!(calls as f64 <= passes * (200.0 + 4.0) + 400.0, "{calls} calls in {passes} passes");
    // a replica cut off from the API does not hammer it: it renews what it
    // held and tries to take nothing while it cannot list the leases
    let cut_off = server.calls_from("dbintel-1");
    tokio::time::sleep(10 * timing.retry).await;
    let more = server.calls_from("dbintel-1") - cut_off;
    assert!(more <= 10 * 4, "a replica that cannot reach the API made {more} calls in 10 passes");
    for r in replicas {
        r.shutdown().await;
    }
}

/// The fake API as a follower sees it, with its GET held at the gate until
/// the test opens it: the server reads the lease only then (a slow GET).
struct SlowGet<'a> {
    api: &'a FakeLeaseClient,
    gate: tokio::sync::Semaphore,
}

impl LeaseApi for SlowGet<'_> {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LeaseRecord>, ApiError>> {
        Box::pin(async move {
            let _pass = self.gate.acquire().await.map_err(|e| ApiError::Other(e.to_string()))?;
            self.api.get(name).await
        })
    }
    fn create<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        self.api.create(name, record)
    }
    fn replace<'a>(&'a self, name: &'a str, record: LeaseRecord) -> BoxFuture<'a, Result<LeaseRecord, ApiError>> {
        self.api.replace(name, record)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, LeaseRecord)>, ApiError>> {
        self.api.list(prefix)
    }
}

/// A follower's GET is sent at t0 and answered 6 s later; meanwhile the
/// holder renews, and the GET returns that renewal. The follower must date
/// what it saw from when the answer came (as client-go does), not from
/// when it asked: dated from t0, the lease "expires" 6 s early, and the
/// follower takes it while the holder — which renewed at t0 + 5.9 s and
/// then went silent — still acts on it.
#[tokio::test]
async fn fake_api_a_follower_stamps_a_lease_after_its_slow_get_so_two_never_hold_it() {
    let (server, clock, timing) = (FakeLeaseServer::default(), ManualClock::default(), Timing::default());
    let (holder_api, follower_api) = (server.client("holder"), server.client("follower"));
    let mut holder = Claim::new("dbintel", "holder", timing);
    let mut follower = Claim::new("dbintel", "follower", timing);
    assert!(holder.tick(&holder_api, &clock).await, "the holder acquires");
    clock.advance(SAMPLE);
    assert!(!follower.tick(&follower_api, &clock).await, "the follower sees it held");

    clock.advance(Duration::from_secs(2));
    let slow = SlowGet { api: &follower_api, gate: tokio::sync::Semaphore::new(0) };
    let (took, ()) = tokio::join!(follower.tick(&slow, &clock), async {
        // the follower's GET is on its way (sent at t0)
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(5900));
        assert!(holder.tick(&holder_api, &clock).await, "the holder renews while the GET is in flight");
        clock.advance(SAMPLE);
        slow.gate.add_permits(1);
    });
    assert!(!took, "the follower cannot take a lease it just saw renewed");

    // the holder goes silent; both keep asking the time, the follower
    // trying every 100 ms
    let silent = clock.now();
    while clock.now() < silent + 2 * timing.duration {
        clock.advance(SAMPLE);
        follower.tick(&follower_api, &clock).await;
        let now = clock.now();
        assert!(
            !(holder.held(now) && follower.held(now)),
            "both hold the lease {:?} after the holder's last renewal: the follower dated the renewal it saw from before its GET",
            now - silent + SAMPLE
        );
    }
    assert!(follower.held(clock.now()), "the follower takes over in the end");
}

/// One replica's passes over 200 target leases at 25 ms per call, timed
/// on tokio's paused clock (the latency is simulated; the time is exact):
/// taking them all, renewing them all, and a pass with none due. One
/// lease after another, a renewal pass took 200 × (GET + PUT) = 10 s —
/// all of the default `renew`. (BENCHMARKS.md, "Sharded leases".)
#[tokio::test(start_paused = true)]
async fn fake_api_a_pass_over_200_leases_at_25ms_per_call_fits_well_inside_renew() {
    use dbintel_cluster::lease::Sharder;
    let server = FakeLeaseServer::default();
    server.set_latency(LATENCY);
    let timing = Timing::default();
    let targets: Vec<String> = (0..200).map(|i| format!("fleet/db{i:03}")).collect();
    let clock = TokioClock::default();
    let api = server.client("dbintel-0");
    let mut sharder = Sharder::new("dbintel", "dbintel-0", &targets, timing);
    async fn pass(sharder: &mut Sharder, server: &FakeLeaseServer, api: &FakeLeaseClient, clock: &TokioClock) -> (Duration, u64) {
        let (started, calls) = (tokio::time::Instant::now(), server.calls_from("dbintel-0"));
        sharder.tick(api, clock).await;
        (started.elapsed(), server.calls_from("dbintel-0") - calls)
    }
    let (took_all, calls_taking) = pass(&mut sharder, &server, &api, &clock).await;
    assert_eq!(sharder.owned(clock.now()).len(), 200, "one pass takes every free lease");
    tokio::time::sleep(timing.renew / 2).await;
    let (renewing, calls_renewing) = pass(&mut sharder, &server, &api, &clock).await;
    let (idle, calls_idle) = pass(&mut sharder, &server, &api, &clock).await;
    eprintln!(
        "200 leases at {LATENCY:?} per call: taking {took_all:?} ({calls_taking} calls), renewing {renewing:?} ({calls_renewing} calls), none due {idle:?} ({calls_idle} calls)"
    );
    assert!(took_all < timing.renew / 4 && renewing < timing.renew / 4, "taking {took_all:?}, renewing {renewing:?}");
    assert_eq!(calls_renewing, 4 + 2 * 200, "a GET and a PUT per lease, and the pass's own four");
    assert_eq!(calls_idle, 4, "a lease renewed a moment ago waits");
    assert_eq!(sharder.owned(clock.now()).len(), 200);
}
