//! Pure CPU work over many items (reading input objects, sorting them into targets) spread
//! over the machine's cores. It owns no I/O: requests run on the client's pool (`api::pool`).

/// Objects read or rendered per thread, at least: below that a thread costs more than it
/// saves.
pub(crate) const OBJECTS_PER_THREAD: usize = 2_000;

/// `work` applied to every item, results in item order, on up to every core when there are
/// at least `per_thread` items for each thread (below that a thread costs more than it saves).
/// A panic in `work` is resumed on the caller's thread.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    per_thread: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let parts = map_chunks(items, per_thread, |chunk| {
        chunk.iter().map(&work).collect::<Vec<R>>()
    });
    let mut all = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part);
    }
    all
}

/// `work` applied to consecutive chunks of `items`, one chunk per thread, results in chunk
/// order. As [`map`], a thread takes at least `per_thread` items.
fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    per_thread: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len() / per_thread.max(1))
        .max(1);
    if threads == 1 {
        return vec![work(items)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        join_all(
            items
                .chunks(items.len().div_ceil(threads))
                .map(|chunk| scope.spawn(move || work(chunk)))
                .collect(),
        )
    })
}

/// The results of scoped threads, in the order given; a thread's panic is resumed on the
/// caller's thread once the earlier threads are joined.
pub(crate) fn join_all<R>(handles: Vec<std::thread::ScopedJoinHandle<'_, R>>) -> Vec<R> {
    handles
        .into_iter()
        .map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_item_order_with_and_without_threads() {
        let items: Vec<u32> = (0..10_001).collect();
        for per_thread in [1, 100, 20_000] {
            let doubled = map(&items, per_thread, |item| item * 2);
            assert_eq!(
                doubled,
                items.iter().map(|item| item * 2).collect::<Vec<_>>()
            );
        }
        assert!(map(&[] as &[u32], 1, |item| *item).is_empty());
    }

    #[test]
    fn chunks_cover_the_items_once_in_order() {
        let items: Vec<u32> = (0..10_001).collect();
        for per_thread in [1, 100, 20_000] {
            let chunks = map_chunks(&items, per_thread, <[u32]>::to_vec);
            assert!(!chunks.is_empty());
            assert_eq!(chunks.concat(), items);
        }
        assert_eq!(map_chunks(&[] as &[u32], 1, <[u32]>::len), [0]);
    }
}
