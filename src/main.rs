//! The `s1-actions` binary: everything happens in the library's `cli::main`.

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    s1_actions::cli::main(std::env::args_os()).into()
}

/// Asks glibc for one malloc arena instead of one per worker thread. Each of the 16 workers
/// reads its own pages; with an arena each, the memory they freed stayed resident in 16
/// places, a quarter of the peak resident memory of a 50,000-object run (BENCHMARKS.md). The
/// workers spend their time waiting on the network, so sharing one arena costs no measurable
/// CPU.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn one_malloc_arena() {
    // SAFETY: `mallopt` only changes an allocator parameter and is called before any other
    // thread exists; its result (0 when the setting is refused) needs no handling, as glibc's
    // default is correct, only larger.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
