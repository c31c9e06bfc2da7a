//! The `s1-actions` binary: everything happens in the library's `cli::main`.

fn main() -> std::process::ExitCode {
    tune_allocator();
    s1_actions::cli::main(std::env::args_os()).into()
}

/// Tunes glibc's allocator for a run's shape: a few large per-request buffers (pages and
/// bodies up to a megabyte) next to many small per-object values.
///
/// - One arena per core instead of glibc's eight per core: each of 16 workers reading its own
///   pages would otherwise keep the memory it freed resident in its own arena. The workers
///   mostly wait on the network, so sharing costs them nothing; the phases that keep every
///   core busy (`cores::map`) still get an arena per core, so they do not queue on one lock.
/// - A fixed mmap threshold of 256 KiB: buffers larger than that (pages and bodies up to a
///   megabyte) are mapped and unmapped, so their memory goes back to the system when freed.
///   glibc otherwise raises the threshold to the largest buffer freed so far, and megabyte
///   buffers then stay in the heap. BENCHMARKS.md gives what each setting holds off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
    let arenas = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .try_into()
        .unwrap_or(libc::c_int::MAX);
    // SAFETY: `mallopt` only changes allocator parameters and is called before any other
    // thread exists; its result (0 when a setting is refused) needs no handling, as glibc's
    // defaults are correct, only larger.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
