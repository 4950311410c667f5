//! `vzfs-migrate`: thin entry point; everything is in the library.
fn main() {
    std::process::exit(vzfs_migrate::main_with_args(std::env::args().collect()));
}
