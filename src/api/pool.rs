//! The worker pool behind [`ApiClient::parallel`](super::ApiClient::parallel): up to N
//! `std::thread::scope` workers pulling items from a shared index, results kept in input order,
//! and no new item started once a run-ending failure was seen.
//!
//! It knows nothing about HTTP; rate limiting and retries happen inside `work` (the client's
//! calls). A panic in `work` propagates to the caller once the scope has joined.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Failure;

/// Runs `work` over `items` on up to `max_workers` threads; the i-th result belongs to the i-th
/// item. After any result is `Err(f)` with `f.ends_run()`, no further item is started, and
/// every item not started gets a clone of that first run-ending failure.
pub(crate) fn run_parallel<T: Sync, R: Send>(
    max_workers: usize,
    items: &[T],
    work: impl Fn(&T) -> Result<R, Failure> + Sync,
) -> Vec<Result<R, Failure>> {
    let next = AtomicUsize::new(0);
    let stop: OnceLock<Failure> = OnceLock::new();
    let drain = || {
        let mut done = Vec::new();
        loop {
            if stop.get().is_some() {
                break;
            }
            let index = next.fetch_add(1, Ordering::Relaxed);
            // Checked again after claiming: an item claimed after the stop stays unstarted.
            if index >= items.len() || stop.get().is_some() {
                break;
            }
            let result = work(&items[index]);
            if let Err(failure) = &result {
                if failure.ends_run() {
                    let _ = stop.set(failure.clone());
                }
            }
            done.push((index, result));
        }
        done
    };

    let workers = max_workers.clamp(1, items.len().max(1));
    let batches: Vec<Vec<(usize, Result<R, Failure>)>> = if workers == 1 {
        // One worker needs no thread.
        vec![drain()]
    } else {
        std::thread::scope(|scope| {
            crate::cores::join_all((0..workers).map(|_| scope.spawn(drain)).collect())
        })
    };

    let mut results: Vec<Option<Result<R, Failure>>> = items.iter().map(|_| None).collect();
    for (index, result) in batches.into_iter().flatten() {
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(stop.get().cloned().unwrap_or_else(|| {
                    Failure::internal("A work item was neither run nor stopped by a failure")
                }))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn results_follow_input_order() {
        let items: Vec<u64> = (0..200).collect();
        for workers in [1, 3, 8, 500] {
            let results = run_parallel(workers, &items, |item| {
                // Uneven work so workers finish out of order.
                std::thread::sleep(Duration::from_micros((item % 7) * 50));
                Ok(item * 2)
            });
            let values: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
            assert_eq!(values, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn item_failures_that_do_not_end_the_run_keep_going() {
        let items: Vec<u32> = (0..20).collect();
        let results = run_parallel(4, &items, |item| {
            if item % 5 == 0 {
                Err(Failure::new(ErrorCode::UpstreamRejected, "refused"))
            } else {
                Ok(*item)
            }
        });
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 4);
        assert_eq!(results[7], Ok(7));
    }

    #[test]
    fn a_run_ending_failure_stops_new_items() {
        let items: Vec<u32> = (0..100).collect();
        let started = Mutex::new(Vec::new());
        let results = run_parallel(3, &items, |item| {
            started.lock().unwrap().push(*item);
            if *item == 10 {
                Err(Failure::new(ErrorCode::AuthRejected, "token rejected"))
            } else {
                std::thread::sleep(Duration::from_millis(1));
                Ok(*item)
            }
        });
        let started = started.into_inner().unwrap();
        // Items already claimed by the other two workers may finish; nothing later starts.
        assert!(started.len() <= 20, "{started:?}");
        assert_eq!(results.len(), 100);
        for (index, result) in results.iter().enumerate() {
            match result {
                Ok(value) => assert!(started.contains(value)),
                Err(failure) => {
                    assert_eq!(failure.code, ErrorCode::AuthRejected, "item {index}");
                    assert_eq!(failure.message, "token rejected");
                }
            }
        }
        assert!(results[99].is_err());
    }

    #[test]
    fn one_worker_stops_right_after_the_failure() {
        let items: Vec<u32> = (0..10).collect();
        let ran = AtomicUsize::new(0);
        let results = run_parallel(1, &items, |item| {
            ran.fetch_add(1, Ordering::Relaxed);
            if *item == 3 {
                Err(Failure::new(ErrorCode::RunDeadline, "deadline"))
            } else {
                Ok(())
            }
        });
        assert_eq!(ran.load(Ordering::Relaxed), 4);
        assert!(results[..3].iter().all(Result::is_ok));
        assert!(
            results[3..]
                .iter()
                .all(|r| r.as_ref().unwrap_err().code == ErrorCode::RunDeadline)
        );
    }

    #[test]
    fn uses_several_threads_and_accepts_no_items() {
        let items: Vec<u32> = (0..8).collect();
        let overlapped = AtomicBool::new(false);
        let in_flight = AtomicUsize::new(0);
        run_parallel(4, &items, |_| {
            if in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
                overlapped.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(5));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
        assert!(overlapped.load(Ordering::SeqCst));
        let none: Vec<Result<(), Failure>> = run_parallel(4, &[] as &[u32], |_| Ok(()));
        assert!(none.is_empty());
    }
}
