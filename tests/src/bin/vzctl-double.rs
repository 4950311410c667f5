//! vzctl-double: a TEST DOUBLE of vzctl 4.x for the vzfs lab, installed as
//! `vzctl` on lab hosts. It follows docs/VZCTL-CONTRACT.md exactly (hook
//! order, argv, environment, exit codes, config rewriting, locks); see
//! `vzfs_lab::vzctl` for what it simulates and what it does not.
//! Never install it on a real OpenVZ node.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(vzfs_lab::vzctl::main(args));
}
