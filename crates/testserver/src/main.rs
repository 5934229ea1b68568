//! The `rkube-testserver` binary: see the library documentation for the endpoints.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use rkube_testserver::{State, USAGE, alloc_and_touch, parse_args, serve};

fn main() -> ExitCode {
    let env_port = std::env::var("PORT").ok();
    let opts = match parse_args(std::env::args().skip(1), env_port.as_deref()) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("rkube-testserver: {err}; {USAGE}");
            return ExitCode::from(2);
        }
    };
    // Held until the process ends.
    let _memory = opts.alloc_mib.map(|mib| {
        let buf = alloc_and_touch(mib);
        println!("allocated and touched {mib} MiB");
        buf
    });
    if let Some(after) = opts.exit_after {
        let code = opts.exit_code;
        if after.is_zero() {
            println!("exiting with code {code}");
            std::process::exit(code);
        }
        std::thread::spawn(move || {
            std::thread::sleep(after);
            println!("exiting with code {code} after {after:?}");
            std::process::exit(code);
        });
    }
    let listener = match TcpListener::bind(("0.0.0.0", opts.port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("rkube-testserver: cannot listen on port {}: {err}", opts.port);
            return ExitCode::FAILURE;
        }
    };
    println!("rkube-testserver listening on {}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    match serve(listener, Arc::new(State::default())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rkube-testserver: {err}");
            ExitCode::FAILURE
        }
    }
}
