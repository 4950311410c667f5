//! `vzfs-create`: thin entry point; everything is in the library
//! ([`vzfs_migrate::create`]).
fn main() {
    std::process::exit(vzfs_migrate::create::main_with_args(
        std::env::args().collect(),
    ));
}
