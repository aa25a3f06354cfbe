//! Owning an event on tokio's paused time: leases renew and lapse by the [`Clock`] the
//! router is given, so these tests jump over whole leases instead of waiting them out.

mod unavailable;

use super::*;
use crate::registry::embedded::EmbeddedStore;
use unavailable::UnavailableStore;

/// The test clock's start: far from the wall clock, so a lease written with the wall clock's
/// "now" by mistake would neither lapse nor hold when the test expects it to.
const T0: UnixMillis = 1_000_000;
const LEASE: Duration = Duration::from_secs(2);

fn ownership(node: &str, clock: Clock) -> Ownership {
    Ownership {
        node: node.into(),
        lease: LEASE,
        renew_every: LEASE / 4,
        in_flight: EventsInFlight::default(),
        routing: RoutingSet::default(),
        outages: StoreOutages::default(),
        ends: None,
        intake: None,
        outcomes: None,
        clock,
    }
}

fn event() -> EventRef {
    EventRef {
        tenant: "acme".into(),
        event_id: "ring-1".into(),
    }
}

/// What `node` gets when it claims the event now, by its clock.
async fn claim_on(store: &AnyStore, node: &Ownership) -> Taken {
    let now = node.clock.now();
    claim(store, node, &event(), now + 60_000, now)
        .await
        .expect("the embedded store answers")
}

#[tokio::test(start_paused = true)]
async fn a_held_lease_renews_on_the_clock_and_lapses_to_another_node_once_its_owner_dies() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 8).unwrap());
    let clock = Clock::tokio(T0);
    let (a, b) = (ownership("node-a", clock), ownership("node-b", clock));
    let owner = tokio::task::LocalSet::new();
    // Node A owns the event with one push still in flight (its sender kept unanswered).
    let _unanswered = owner
        .run_until(async {
            let Taken::Owned { guards, .. } = claim_on(&store, &a).await else {
                panic!("the first claim owns the event");
            };
            let (answer, ticket) = oneshot::channel();
            let device = DevicePush {
                device_id: "phone".into(),
                platform: None,
                outcome: DeviceOutcome::Pending(ticket),
            };
            hold(store.clone(), &a, event(), vec![device], guards, None, None);
            answer
        })
        .await;
    // Three leases later A is still renewing: a duplicate on B is only a duplicate.
    owner.run_until(tokio::time::sleep(LEASE * 3)).await;
    assert!(
        matches!(claim_on(&store, &b).await, Taken::Duplicate(_)),
        "a renewed lease does not lapse"
    );
    // A dies: its task goes with its arbiter, and nothing renews any more.
    drop(owner);
    tokio::time::advance(LEASE / 2).await;
    assert!(
        matches!(claim_on(&store, &b).await, Taken::Duplicate(_)),
        "the last renewal still runs"
    );
    tokio::time::advance(LEASE).await;
    let Taken::Owned { done, .. } = claim_on(&store, &b).await else {
        panic!("a lapsed lease goes to the next claim");
    };
    assert!(done.is_empty(), "no device had an outcome");
}

#[tokio::test(start_paused = true)]
async fn a_finish_the_store_refuses_is_tried_again_with_backoff_until_the_deadline() {
    let store = UnavailableStore::default();
    let clock = Clock::tokio(T0);
    let finishing = Finishing {
        store: &store,
        event: &event(),
        node: "node-a",
        deadline: T0 + 1_000,
        most_between: Duration::from_millis(200),
        outages: &StoreOutages::default(),
        clock,
    };
    let written = finishing.until_written(&["phone".into()]).await;
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
    // 50 ms, doubling up to the 200 ms rhythm; the try a pause would put past the deadline
    // is not waited for.
    let tried: Vec<_> = store
        .finishes
        .lock()
        .unwrap()
        .iter()
        .map(|at| at - T0)
        .collect();
    assert_eq!(tried, [0, 50, 150, 350, 550, 750, 950]);
    assert_eq!(
        clock.now() - T0,
        950,
        "gave up at once rather than sleep past the deadline"
    );
}
