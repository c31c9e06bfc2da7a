//! The `s1-actions` binary: everything happens in the library's `cli::main`.

fn main() -> std::process::ExitCode {
    s1_actions::cli::main(std::env::args_os()).into()
}
