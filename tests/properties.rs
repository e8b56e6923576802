//! Property tests of the pure parts the loop trusts: the retry schedule and the circuit
//! breaker. The breaker is driven the way the daemon drives it (a task starts only when
//! `may_start`, every started task ends once, abandons only while stopping) by random
//! sequences, and checked against the rules of the design at every step.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use worker_watcher::worker::breaker::{Breaker, State, Transition};
use worker_watcher::worker::retry::delay;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// For one jitter sample, the delay never shrinks as attempts go up.
    #[test]
    fn retry_delay_is_monotone_in_n(
        n in 1u32..200, step in 1u32..50, initial in 0.0f64..100.0,
        backoff in 1.0f64..10.0, cap in 0.0f64..100_000.0, jitter in 0.0f64..1.0,
    ) {
        let a = delay(n, secs(initial), backoff, secs(cap), jitter);
        let b = delay(n + step, secs(initial), backoff, secs(cap), jitter);
        prop_assert!(a <= b, "n={n}: {a:?} > n={}: {b:?}", n + step);
    }

    /// Never over the cap, and within ±10 % of INITIAL × BACKOFF^(n−1) below it.
    #[test]
    fn retry_delay_is_within_jitter_and_cap(
        n in 1u32..100, initial in 0.0f64..100.0, backoff in 1.0f64..10.0,
        cap in 0.0f64..100_000.0, jitter in 0.0f64..1.0,
    ) {
        let d = delay(n, secs(initial), backoff, secs(cap), jitter);
        prop_assert!(d <= secs(cap), "{d:?} over the cap {cap}");
        let base = initial * backoff.powi(n as i32 - 1);
        let got = d.as_secs_f64();
        if base * 1.1 < cap {
            prop_assert!(got >= base * 0.9 - 1e-6 && got <= base * 1.1 + 1e-6,
                "{got} outside ±10 % of {base}");
        } else if base * 0.9 > cap {
            prop_assert!((got - cap).abs() < 1e-6, "{got} should be the cap {cap}");
        }
    }

    /// Any input, however absurd, gives a finite delay within the cap.
    #[test]
    fn retry_delay_never_panics(
        n in any::<u32>(), initial in 0.0f64..1e12, backoff in any::<f64>(),
        cap in 0.0f64..1e12, jitter in any::<f64>(),
    ) {
        let d = delay(n, secs(initial), backoff, secs(cap), jitter);
        prop_assert!(d <= secs(cap));
    }

    #[test]
    fn breaker_follows_the_rules(ops in proptest::collection::vec(op(), 1..300), threshold in 1u32..6) {
        check_breaker(&ops, threshold);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Time passes, in ms.
    Wait(u64),
    /// Start a task, if the breaker lets one start.
    Start,
    /// The `i`-th running task (modulo) ends.
    Succeed(usize),
    Fail(usize),
    /// A running task is stopped by the shutdown (no outcome); nothing starts after that.
    Abandon(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..3000).prop_map(Op::Wait),
        Just(Op::Start),
        Just(Op::Start),
        any::<usize>().prop_map(Op::Succeed),
        any::<usize>().prop_map(Op::Fail),
        any::<usize>().prop_map(Op::Fail),
        any::<usize>().prop_map(Op::Abandon),
    ]
}

const TIMEOUT: Duration = Duration::from_secs(1);

fn check_breaker(ops: &[Op], threshold: u32) {
    let mut b = Breaker::new(TIMEOUT, 8 * TIMEOUT);
    // Failed trials in a row since the breaker last closed: its backoff.
    let mut reopens = 0u32;
    let mut now = Instant::now();
    // Running tasks; `true` for the trial of the current half-open period.
    let mut running: Vec<bool> = Vec::new();
    let mut stopping = false;
    let mut trials_this_half_open = 0;
    let mut consecutive = 0u32;
    for op in ops {
        match *op {
            Op::Wait(ms) => {
                now += Duration::from_millis(ms);
                let before = b.state();
                match b.tick(now) {
                    Some(Transition::HalfOpened) => {
                        let State::Open { until } = before else { panic!("half-opened from {before:?}") };
                        assert!(now >= until, "half-opened before its time");
                        trials_this_half_open = 0;
                    }
                    Some(t) => panic!("tick gave {t:?}"),
                    None => {
                        if let State::Open { until } = before {
                            assert!(now < until, "still open after its time");
                        }
                    }
                }
            }
            Op::Start => {
                if stopping || !b.may_start() {
                    continue;
                }
                assert!(!matches!(b.state(), State::Open { .. }), "a task may start while open");
                let trial = b.state() == State::HalfOpen;
                if trial {
                    trials_this_half_open += 1;
                    assert_eq!(trials_this_half_open, 1, "more than one trial in one half-open period");
                }
                b.started();
                running.push(trial);
            }
            Op::Succeed(i) | Op::Fail(i) | Op::Abandon(i) if running.is_empty() => {
                let _ = i;
            }
            Op::Succeed(i) => {
                running.remove(i % running.len());
                let before = b.state();
                consecutive = 0;
                let t = b.succeeded();
                match before {
                    State::HalfOpen => {
                        reopens = 0;
                        assert_eq!(t, Some(Transition::Closed), "success in half-open closes")
                    }
                    _ => assert_eq!(t, None),
                }
            }
            Op::Fail(i) => {
                running.remove(i % running.len());
                let before = b.state();
                consecutive += 1;
                let t = b.failed(now, threshold);
                let expect_open = match before {
                    State::Closed => consecutive >= threshold,
                    State::HalfOpen => true,
                    State::Open { .. } => false,
                };
                assert_eq!(t == Some(Transition::Opened), expect_open, "{before:?}, {consecutive} failures");
                if expect_open {
                    if before == State::HalfOpen {
                        reopens += 1;
                    }
                    let wait = (TIMEOUT * 2u32.pow(reopens.min(10))).min(8 * TIMEOUT);
                    assert_eq!(
                        b.state(),
                        State::Open { until: now + wait },
                        "the backoff after {reopens} failed trials"
                    );
                }
            }
            Op::Abandon(i) => {
                running.remove(i % running.len());
                stopping = true;
                b.abandoned();
            }
        }
        assert_eq!(b.consecutive_failures(), consecutive);
        assert_eq!(
            b.state().gauge(),
            match b.state() {
                State::Closed => 0,
                State::Open { .. } => 1,
                State::HalfOpen => 2,
            }
        );
        if matches!(b.state(), State::Open { .. }) {
            assert!(!b.may_start(), "open lets a task start");
        }
    }
}
