//! The `hydrant` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    hydrant_server::malloc::limit_arenas();
    hydrant_server::cli::main()
}
