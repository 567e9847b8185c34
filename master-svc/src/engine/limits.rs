//! The rules of flow control, as pure functions of a queue's [`Gate`] and the time: how many
//! tasks a queue admits to a lease (pause, in-flight cap, token bucket), how the key rotation
//! deals them among concurrency keys, and what a lease leaves in the bucket.
//!
//! A store reads the gate in the lease's transaction (locking it where several masters share
//! the database), asks [`admit`], reads at most that many ready tasks (by lane for a key limit,
//! [`deal`] choosing among them), and writes back what [`settle`] returns,
//! in the same commit as the leases. So a limit holds exactly, on every master: a slot is a live
//! lease, and it frees when the lease ends, however it ends.

use crate::model::{
    Admission, Bucket, Gate, GateAfter, Lane, LaneTasks, Millis, QueueSettings, RateLimit,
};

/// Whether the queue leases nothing at `now`: paused by an operator, or for a while by a result.
pub fn paused(settings: &QueueSettings, now: Millis) -> bool {
    settings.paused || settings.paused_until.is_some_and(|until| until > now)
}

/// The tokens in a bucket at `now`: what it held, refilled at the rate since, at most `burst`.
/// A queue without a bucket yet has a full one.
pub fn tokens(rate: &RateLimit, bucket: Option<Bucket>, now: Millis) -> f64 {
    let burst = f64::from(rate.burst);
    match bucket {
        None => burst,
        Some(bucket) => {
            let elapsed_ms = (now - bucket.at).max(0) as f64;
            (bucket.tokens + elapsed_ms * rate.per_sec / 1000.0).min(burst)
        }
    }
}

/// How many tasks `gate`'s queue admits to one lease at `now`, and when a queue that admits
/// none will admit some by itself.
pub fn admit(gate: &Gate, now: Millis) -> Admission {
    let settings = &gate.settings;
    let per_key = settings.key_limit;
    if paused(settings, now) {
        let reopens_at = settings.paused_until.filter(|_| !settings.paused);
        return Admission {
            tasks: 0,
            per_key,
            reopens_at,
        };
    }
    let mut tasks = settings
        .max_in_flight
        .map_or(u32::MAX, |max| max.saturating_sub(gate.in_flight));
    let mut reopens_at = None;
    if let Some(rate) = &settings.rate_limit {
        let available = tokens(rate, gate.bucket, now);
        tasks = tasks.min(available.floor() as u32);
        if available < 1.0 {
            let bucket = Bucket {
                tokens: available,
                at: now,
            };
            reopens_at = Some(next_token_at(rate, bucket));
        }
    }
    Admission {
        tasks,
        per_key,
        reopens_at: reopens_at.filter(|_| tasks == 0),
    }
}

/// The gate after a lease took `taken` (where each task it took from the queue came from, in any
/// order) at `now`: the bucket less a token per task, and the rotation's cursor at the key the
/// round reached last (where it was, when the lease took no keyed task).
pub fn settle(gate: &Gate, now: Millis, taken: &[Lane]) -> GateAfter {
    let bucket = gate.settings.rate_limit.as_ref().map(|rate| {
        // A master whose clock is behind the last spender's does not refill the bucket twice.
        let at = gate.bucket.map_or(now, |bucket| bucket.at.max(now));
        Bucket {
            tokens: (tokens(rate, gate.bucket, at) - taken.len() as f64).max(0.0),
            at,
        }
    });
    let reopens_at = gate
        .settings
        .rate_limit
        .as_ref()
        .zip(bucket)
        .filter(|(_, bucket)| bucket.tokens < 1.0)
        .map(|(rate, bucket)| next_token_at(rate, bucket));
    GateAfter {
        bucket,
        cursor: furthest_key(gate.cursor.as_deref(), taken).or_else(|| gate.cursor.clone()),
        reopens_at,
    }
}

/// Of the keys `taken`, the one the rotation reached last going on from `cursor` (the keys after
/// it in byte order, then from the first key again): whatever order a store lists them in.
fn furthest_key(cursor: Option<&str>, taken: &[Lane]) -> Option<String> {
    let wrapped = |key: &str| cursor.is_some_and(|cursor| key <= cursor);
    taken
        .iter()
        .filter_map(|lane| match lane {
            Lane::Key(key) => Some(key.as_str()),
            Lane::Unkeyed => None,
        })
        .max_by_key(|key| (wrapped(key), *key))
        .map(str::to_owned)
}

/// When a bucket holding less than a token next holds one.
fn next_token_at(rate: &RateLimit, bucket: Bucket) -> Millis {
    // A float cast saturates: a rate of one token in a million years waits `Millis::MAX`.
    let wait_ms = ((1.0 - bucket.tokens) * 1000.0 / rate.per_sec).ceil() as Millis;
    bucket.at.saturating_add(wait_ms.max(1))
}

/// The key rotation: up to `wanted` tasks from `lanes` (one per concurrency key, in rotation
/// order: the keys after the queue's cursor in byte order, then from the first key again; each
/// holding no more than its room under the key limit), one per key per round, so a key with
/// 10,000 ready tasks and a key with 10 progress at the same pace. The tasks come out in the
/// order dealt.
pub fn deal<T>(lanes: Vec<LaneTasks<T>>, wanted: u32) -> Vec<(Lane, T)> {
    let mut rounds: Vec<(Lane, std::vec::IntoIter<T>)> = lanes
        .into_iter()
        .map(|lane| (Lane::Key(lane.key), lane.tasks.into_iter()))
        .collect();
    let mut dealt = Vec::new();
    while dealt.len() < wanted as usize {
        let before = dealt.len();
        for (lane, tasks) in &mut rounds {
            if dealt.len() == wanted as usize {
                break;
            }
            if let Some(task) = tasks.next() {
                dealt.push((lane.clone(), task));
            }
        }
        if dealt.len() == before {
            break;
        }
    }
    dealt
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000_000;

    fn gate(settings: QueueSettings) -> Gate {
        Gate {
            queue: "q".into(),
            settings,
            bucket: None,
            in_flight: 0,
            cursor: None,
        }
    }

    fn rate(per_sec: f64, burst: u32) -> QueueSettings {
        QueueSettings {
            rate_limit: Some(RateLimit { per_sec, burst }),
            ..QueueSettings::default()
        }
    }

    #[test]
    fn a_queue_without_settings_admits_any_number() {
        let admitted = admit(&gate(QueueSettings::default()), NOW);
        assert_eq!(admitted.tasks, u32::MAX);
        assert_eq!(admitted.reopens_at, None);
    }

    #[test]
    fn a_paused_queue_admits_nothing_and_a_timed_pause_says_when_it_ends() {
        let paused = QueueSettings {
            paused: true,
            ..QueueSettings::default()
        };
        assert_eq!(admit(&gate(paused), NOW).tasks, 0);
        assert_eq!(admit(&gate(QueueSettings::default()), NOW).reopens_at, None);
        let for_a_while = QueueSettings {
            paused_until: Some(NOW + 500),
            ..QueueSettings::default()
        };
        let admitted = admit(&gate(for_a_while.clone()), NOW);
        assert_eq!((admitted.tasks, admitted.reopens_at), (0, Some(NOW + 500)));
        assert_eq!(admit(&gate(for_a_while), NOW + 500).tasks, u32::MAX);
    }

    #[test]
    fn the_in_flight_cap_admits_what_is_left_of_it() {
        let mut capped = gate(QueueSettings {
            max_in_flight: Some(3),
            ..QueueSettings::default()
        });
        capped.in_flight = 2;
        assert_eq!(admit(&capped, NOW).tasks, 1);
        capped.in_flight = 5;
        assert_eq!(admit(&capped, NOW).tasks, 0);
        assert_eq!(admit(&capped, NOW).reopens_at, None, "a result reopens it");
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_refills_at_the_rate() {
        let mut limited = gate(rate(50.0, 5));
        assert_eq!(admit(&limited, NOW).tasks, 5);
        let taken = vec![Lane::Unkeyed; 5];
        limited.bucket = settle(&limited, NOW, &taken).bucket;
        let admitted = admit(&limited, NOW);
        assert_eq!((admitted.tasks, admitted.reopens_at), (0, Some(NOW + 20)));
        assert_eq!(admit(&limited, NOW + 20).tasks, 1);
        assert_eq!(admit(&limited, NOW + 99).tasks, 4);
        assert_eq!(
            admit(&limited, NOW + 10_000).tasks,
            5,
            "never above the burst"
        );
    }

    #[test]
    fn a_bucket_spent_by_a_master_whose_clock_is_behind_does_not_refill_twice() {
        let mut limited = gate(rate(10.0, 10));
        limited.bucket = Some(Bucket {
            tokens: 0.0,
            at: NOW,
        });
        let after = settle(&limited, NOW - 1_000, &[]);
        assert_eq!(
            after.bucket,
            Some(Bucket {
                tokens: 0.0,
                at: NOW
            })
        );
        assert_eq!(after.reopens_at, Some(NOW + 100));
    }

    fn lane(key: &str, tasks: &[u32]) -> LaneTasks<u32> {
        LaneTasks {
            key: key.into(),
            tasks: tasks.to_vec(),
        }
    }

    #[test]
    fn the_rotation_deals_one_task_per_key_per_round() {
        let lanes = vec![
            lane("big", &[1, 2, 3, 4]),
            lane("small", &[10]),
            lane("third", &[20, 21]),
        ];
        let dealt: Vec<u32> = deal(lanes, 6).into_iter().map(|(_, t)| t).collect();
        assert_eq!(dealt, [1, 10, 20, 2, 21, 3]);
    }

    #[test]
    fn the_cursor_moves_to_the_last_key_served() {
        let lanes = vec![lane("a", &[1, 2]), lane("b", &[3])];
        let mut taken: Vec<Lane> = deal(lanes, 2).into_iter().map(|(l, _)| l).collect();
        taken.push(Lane::Unkeyed);
        let g = gate(QueueSettings::default());
        assert_eq!(settle(&g, NOW, &taken).cursor.as_deref(), Some("b"));
        assert_eq!(settle(&g, NOW, &[Lane::Unkeyed]).cursor, None);
    }

    #[test]
    fn the_cursor_is_the_key_reached_last_whatever_order_the_keys_come_in() {
        let mut g = gate(QueueSettings::default());
        g.cursor = Some("m".into());
        let keys = |keys: &[&str]| -> Vec<Lane> {
            keys.iter().map(|key| Lane::Key((*key).into())).collect()
        };
        // After "m": "x", then round again: "a", "c". The round reached "c" last.
        let taken = keys(&["c", "x", "a"]);
        assert_eq!(settle(&g, NOW, &taken).cursor.as_deref(), Some("c"));
        let taken = keys(&["z", "n"]);
        assert_eq!(settle(&g, NOW, &taken).cursor.as_deref(), Some("z"));
    }

    #[test]
    fn a_key_has_the_room_its_limit_leaves_within_what_the_queue_admits() {
        let admission = Admission {
            tasks: 5,
            per_key: Some(2),
            reopens_at: None,
        };
        assert_eq!(
            (admission.room(0), admission.room(1), admission.room(3)),
            (2, 1, 0)
        );
        let free = Admission {
            per_key: None,
            ..admission
        };
        assert_eq!(free.room(100), 5);
    }
}
