//! The origin map's bounds on paused time: eviction of the least recently used, idle
//! stop, refusal memory and its bound.

use super::*;

const IDLE: Duration = Duration::from_secs(300);

fn map(max: usize) -> OriginMap<u32> {
    OriginMap::new(max, IDLE)
}

#[tokio::test(start_paused = true)]
async fn a_full_map_lets_go_of_the_least_recently_used_origin() {
    let mut origins = map(2);
    let start = Instant::now();
    assert_eq!(origins.insert("https://a".into(), 1, start), None);
    assert_eq!(
        origins.insert("https://b".into(), 2, start + Duration::from_secs(1)),
        None
    );
    // `a` used again: `b` is now the least recently used.
    assert_eq!(
        origins.get("https://a", start + Duration::from_secs(2)),
        Some(1)
    );

    let evicted = origins.insert("https://c".into(), 3, start + Duration::from_secs(3));

    assert_eq!(evicted.as_deref(), Some("https://b"));
    assert_eq!(origins.len(), 2, "bounded");
    assert_eq!(origins.get("https://b", start), None);
    assert_eq!(origins.get("https://a", start), Some(1));
    assert_eq!(origins.get("https://c", start), Some(3));
}

#[tokio::test(start_paused = true)]
async fn an_origin_given_again_replaces_its_value_without_evicting_another() {
    let mut origins = map(1);
    let now = Instant::now();
    origins.insert("https://a".into(), 1, now);
    assert_eq!(origins.insert("https://a".into(), 2, now), None);
    assert_eq!(origins.get("https://a", now), Some(2));
}

#[tokio::test(start_paused = true)]
async fn an_origin_unused_for_the_idle_time_is_let_go_and_a_used_one_kept() {
    let mut origins = map(4);
    origins.insert("https://quiet".into(), 1, Instant::now());
    origins.insert("https://busy".into(), 2, Instant::now());
    tokio::time::advance(IDLE - Duration::from_secs(1)).await;
    origins.get("https://busy", Instant::now());
    assert!(origins.sweep(Instant::now()).is_empty(), "nothing idle yet");

    tokio::time::advance(Duration::from_secs(1)).await;

    assert_eq!(
        origins.sweep(Instant::now()),
        vec!["https://quiet".to_owned()]
    );
    assert_eq!(origins.values().copied().collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_origin_is_remembered_for_a_while_then_vetted_again() {
    let mut origins = map(4);
    origins.refuse("https://inside".into(), Instant::now());
    assert!(origins.is_refused("https://inside", Instant::now()));
    assert!(!origins.is_refused("https://elsewhere", Instant::now()));

    tokio::time::advance(REFUSAL_MEMORY - Duration::from_millis(1)).await;
    assert!(origins.is_refused("https://inside", Instant::now()));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!origins.is_refused("https://inside", Instant::now()));
    origins.sweep(Instant::now());
    assert_eq!(origins.refusals(), 0, "the sweep forgets old refusals");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_refused_names_cannot_grow_the_refusal_memory() {
    let mut origins = map(2);
    for n in 0..100 {
        origins.refuse(format!("https://{n}.inside"), Instant::now());
        assert!(origins.refusals() <= REFUSAL_BOUND * 2);
    }
    assert!(
        origins.is_refused("https://99.inside", Instant::now()),
        "the latest is kept"
    );
}
